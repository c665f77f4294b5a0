"""`make run`'s demo: scripts/demo.sh starts nginx and the relay, the curl
command it prints shows the caller's own address, and Ctrl-C stops both."""

import os
import signal
import subprocess

import harness
from harness import check

from .base import case

CURL = "curl -k https://127.0.0.1:8443/"


@case("make_run_demo", per_io=False)
def demo(ctx):
    for port in (8443, 9443):
        if harness.is_listening(port):
            raise harness.TestSkip(f"port {port}, which the demo uses, is taken")
    script = os.path.join(harness.REPO, "scripts", "demo.sh")
    demo = harness.Proc("demo", ["sh", script, ctx.binary], ctx.tmpdir)
    ctx.on_cleanup(demo.kill)
    harness.wait_until(lambda: CURL in demo.stdout() or not demo.alive(), 30,
                       "the demo to print its curl command")
    check(demo.alive(), f"demo exited: {harness.tail(demo.stderr())}")
    # The printed command, from a client address of our choosing.
    out = subprocess.run(CURL.split() + ["-s", "--max-time", "5", "--interface", "127.0.0.5"],
                         capture_output=True, text=True, timeout=10)
    check(out.stdout.strip() == "your address as the backend saw it: 127.0.0.5",
          f"curl printed {out.stdout!r} (exit {out.returncode}, {out.stderr.strip()!r})")
    # Ctrl-C in a terminal signals the whole foreground process group.
    os.killpg(demo.pid, signal.SIGINT)
    status = demo.wait(15)
    check(status == 0, f"demo exited with {status} after Ctrl-C")
    harness.wait_until(lambda: not harness.is_listening(8443) and not harness.is_listening(9443),
                       10, "the relay and nginx to stop listening")
    ctx.note("curl saw 127.0.0.5; Ctrl-C stopped both")
