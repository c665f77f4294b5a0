"""Command line: --help, --version, and bad input rejected with status 2 and
one stderr line naming the flag, before anything is bound."""

import subprocess

import harness
from harness import check
from kit import config as cfg

from .base import case


def run_cli(ctx, args, timeout=10):
    """Run the binary with args; a relay that starts serving instead of
    exiting is killed at timeout and reported."""
    try:
        p = subprocess.run([ctx.binary] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, env=ctx.relay_env())
    except subprocess.TimeoutExpired:
        raise harness.TestFailure(f"{' '.join(args)}: still running after {timeout}s") from None
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if ctx.sanitizer:
        for marker in harness.SANITIZER_MARKERS:
            check(marker not in err, f"sanitizer report: {harness.tail(err)}")
    return p.returncode, out, err


@case("cli_help", per_io=False)
def cli_help(ctx):
    rc, out, err = run_cli(ctx, ["--help"])
    check(rc == 0, f"--help exited {rc}: {harness.tail(err)}")
    text = out + err
    for flag in ("--listen", "--backend", "--proxy-protocol"):
        check(flag in text, f"--help does not mention {flag}")


@case("cli_version", per_io=False)
def cli_version(ctx):
    rc, out, err = run_cli(ctx, ["--version"])
    check(rc == 0, f"--version exited {rc}: {harness.tail(err)}")
    check(harness.parse_version(out + err), f"--version printed no version: {(out + err)!r}")


def bad_input(args, flag):
    """A test that args are rejected: status 2, exactly one stderr line naming flag."""
    def test(ctx):
        free = harness.free_port()
        argv = [a.replace("FREE", str(free)) for a in args]
        rc, out, err = run_cli(ctx, argv)
        lines = err.splitlines()
        check(rc == 2, f"{' '.join(argv)}: exit status {rc}, want 2 (stderr {err.strip()!r})")
        check(len(lines) == 1, f"{' '.join(argv)}: {len(lines)} stderr lines, want 1: {err!r}")
        check(flag in lines[0], f"{' '.join(argv)}: stderr {lines[0]!r} does not name {flag}")
        check(not harness.is_listening(free), f"port {free} is still bound")
    return test


BAD_INPUTS = [
    ("listen_unparsable", ["--listen", "foo", "--backend", "127.0.0.1:FREE"], "--listen"),
    ("listen_port_0", ["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:FREE"], "--listen"),
    ("listen_port_70000", ["--listen", "127.0.0.1:70000", "--backend", "127.0.0.1:FREE"],
     "--listen"),
    ("backend_unparsable", ["--listen", "127.0.0.1:FREE", "--backend", "[::1:80"], "--backend"),
    ("unknown_flag", ["--listen", "127.0.0.1:FREE", "--backend", "127.0.0.1:1", "--bogus"],
     "--bogus"),
    ("missing_backend", ["--listen", "127.0.0.1:FREE"], "--backend"),
    ("missing_listen", ["--backend", "127.0.0.1:FREE"], "--listen"),
    ("workers_0", ["--listen", "127.0.0.1:FREE", "--backend", "127.0.0.1:1", "--workers", "0"],
     "--workers"),
    ("connect_timeout_xyz", ["--listen", "127.0.0.1:FREE", "--backend", "127.0.0.1:1",
                             "--connect-timeout", "xyz"], "--connect-timeout"),
    ("io_nope", ["--listen", "127.0.0.1:FREE", "--backend", "127.0.0.1:1", "--io", "nope"],
     "--io"),
    ("proxy_protocol_v3", ["--listen", "127.0.0.1:FREE", "--backend", "127.0.0.1:1",
                           "--proxy-protocol", "v3"], "--proxy-protocol"),
]

for _name, _args, _flag in BAD_INPUTS:
    case(f"cli_rejects_{_name}", per_io=False)(bad_input(_args, _flag))


@case("listen_address_in_use", per_io=False)
def listen_in_use(ctx):
    """A port something already listens on is refused with one clear line,
    even though ringrelay's own listeners use SO_REUSEPORT (which would
    otherwise let a second relay quietly take half of the traffic)."""
    import socket
    taken = socket.socket()
    ctx.on_cleanup(taken.close)
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen(8)
    port = taken.getsockname()[1]
    rc, out, err = run_cli(ctx, ["--listen", f"127.0.0.1:{port}", "--backend", "127.0.0.1:9"])
    lines = err.splitlines()
    check(rc == 1, f"exit status {rc}, want 1 (stderr {err.strip()!r})")
    check(len(lines) == 1 and f"--listen 127.0.0.1:{port}" in lines[0]
          and "in use" in lines[0], f"stderr {err!r}")


@case("config_check_shipped_example", per_io=False)
def config_check_example(ctx):
    """conf/ringrelay.yaml passes -t; --dump-config prints it with every
    default, and that output passes -t too."""
    import os
    example = os.path.join(harness.REPO, "conf", "ringrelay.yaml")
    rc, _, err = run_cli(ctx, ["-t", "-c", example])
    check(rc == 0 and "syntax is ok" in err, f"-t exited {rc}: {err!r}")
    rc, out, err = run_cli(ctx, ["--dump-config", "-c", example])
    check(rc == 0 and "health_check:" in out and "max_connections:" in out,
          f"--dump-config exited {rc}: {err!r}")
    dumped = os.path.join(ctx.tmpdir, "dumped.yaml")
    with open(dumped, "w") as f:
        f.write(out)
    rc, _, err = run_cli(ctx, ["-t", "-c", dumped])
    check(rc == 0, f"the dump does not pass -t: {err!r}")


@case("config_check_bad_file", per_io=False)
def config_check_bad(ctx):
    """-t on a bad file: exit 2, one line with file, line, column, key."""
    import os
    # Line 7 is `      - address: "192.168.0.5:70000"`, the value at column 18.
    bad = cfg.write(ctx, cfg.document([cfg.listener("a", 8443)], [
        {"name": "b", "servers": [cfg.server("192.168.0.5:70000")]}]), name="bad.yaml")
    rc, _, err = run_cli(ctx, ["-t", "-c", bad])
    want = (f"ringrelay: {bad}:7:18: backends[0].servers[0].address: expected IPV4:PORT, "
            "[IPV6]:PORT, NAME:PORT (port 1-65535) or unix:/path, got '192.168.0.5:70000'\n")
    check(rc == 2 and err == want, f"exit {rc}, stderr {err!r}, want {want!r}")
    rc, _, err = run_cli(ctx, ["-t", "-c", os.path.join(ctx.tmpdir, "missing.yaml")])
    check(rc == 2 and "missing.yaml: No such file or directory" in err, f"exit {rc}: {err!r}")
