"""ringrelay doctor against real nginx listeners with and without
proxy_protocol, on TCP and on a unix socket, a closed port, and bad
usage."""

import os
import subprocess

import harness
from harness import check
from peers.daemons import Nginx

from .base import case


def doctor(ctx, *args):
    p = subprocess.run([ctx.binary, "doctor", *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def probe_line(out, name):
    return next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))


@case("doctor_nginx_with_proxy_protocol", per_io=False, budget=90)
def doctor_with(ctx):
    """nginx `listen ... ssl proxy_protocol`: v1, v2 and LOCAL complete a
    handshake, no header does not; the verdict keeps v2."""
    nginx = Nginx(ctx, ctx.session_dir)
    code, out, err = doctor(ctx, f"127.0.0.1:{nginx.port4}", "--sni", "localhost")
    check(code == 0, f"exit {code}: {out}{err}")
    for name in ("PROXY v1", "PROXY v2", "PROXY v2 LOCAL"):
        check(" ok:" in probe_line(out, name),
              f"{name} did not work: {out}")
    check("failed" in probe_line(out, "no header"), f"no header worked: {out}")
    check("expects a PROXY header and takes v1 or v2" in out and "--proxy-protocol v2" in out,
          f"verdict: {out}")


@case("doctor_nginx_without_proxy_protocol", per_io=False, budget=90)
def doctor_without(ctx):
    """nginx `listen ... ssl` alone: only no header works, the others are
    answered with nginx's plain-text 400, quoted; the verdict says how to
    fix either side."""
    nginx = Nginx(ctx, ctx.session_dir, proxy_protocol=False)
    code, out, err = doctor(ctx, f"127.0.0.1:{nginx.port4}")
    check(code == 0, f"exit {code}: {out}{err}")
    check(" ok:" in probe_line(out, "no header"), f"no header failed: {out}")
    check('"HTTP/1.1 400 Bad Request"' in probe_line(out, "PROXY v2"), f"v2 probe: {out}")
    check("does not expect a PROXY header" in out and "listen ... ssl proxy_protocol;" in out
          and "--proxy-protocol off" in out, f"verdict: {out}")


@case("doctor_nginx_on_a_unix_socket", per_io=False, budget=90)
def doctor_unix(ctx):
    """--backend takes unix:/path, so doctor does too: nginx's `listen
    unix:... ssl proxy_protocol` takes v1 and v2 (naming loopback as the
    client, as a relay's header would name a TCP client); the same socket
    without proxy_protocol answers them in plain text; a path with nothing
    behind it fails every probe."""
    nginx = Nginx(ctx, ctx.session_dir)
    target = "unix:" + nginx.unix_path
    code, out, err = doctor(ctx, target, "--sni", "localhost")
    check(code == 0, f"exit {code}: {out}{err}")
    for name in ("PROXY v1", "PROXY v2", "PROXY v2 LOCAL"):
        check(" ok:" in probe_line(out, name), f"{name} did not work: {out}")
    check("failed" in probe_line(out, "no header"), f"no header worked: {out}")
    check(f"verdict: {target} expects a PROXY header and takes v1 or v2" in out,
          f"verdict: {out}")

    plain = Nginx(ctx, ctx.session_dir, proxy_protocol=False, name="nginx-plain")
    code, out, err = doctor(ctx, "unix:" + plain.unix_path)
    check(code == 0, f"exit {code}: {out}{err}")
    check(" ok:" in probe_line(out, "no header"), f"no header failed: {out}")
    check('"HTTP/1.1 400 Bad Request"' in probe_line(out, "PROXY v1"), f"v1 probe: {out}")
    check("does not expect a PROXY header" in out, f"verdict: {out}")

    code, out, _ = doctor(ctx, "unix:" + os.path.join(ctx.tmpdir, "nothing.sock"))
    check(code == 1 and "No such file or directory" in out and "no probe completed" in out,
          f"exit {code}: {out}")


@case("doctor_nothing_listening", per_io=False)
def doctor_closed(ctx):
    """Nothing on the port: every probe fails to connect, exit status 1."""
    code, out, _ = doctor(ctx, f"127.0.0.1:{harness.free_port()}")
    check(code == 1, f"exit {code}, want 1: {out}")
    check("Connection refused" in out and "no probe completed" in out, out)


@case("doctor_bad_usage", per_io=False)
def doctor_usage(ctx):
    code, _, err = doctor(ctx, "nowhere")
    check(code == 2 and "'nowhere': expected IPV4:PORT, [IPV6]:PORT or unix:/absolute/path" in err,
          f"exit {code}: {err}")
    code, _, err = doctor(ctx, "unix:relative.sock")
    check(code == 2 and "'unix:relative.sock': expected" in err, f"exit {code}: {err}")
    code, _, err = doctor(ctx)
    check(code == 2 and "usage: ringrelay doctor" in err, f"exit {code}: {err}")
