"""Real PROXY-protocol backends: nginx terminating TLS and HAProxy in TCP
mode must both see the client's own address, in the response and in their logs."""

import shutil
import socket
import subprocess

import harness
from harness import check
from kit.tls import expect_body, handshake_fails, https_get
from peers.backends import PlainEcho
from peers.daemons import HAProxy, Nginx
from peers.proxy_header import read_proxy_header
from peers.wire import recv_exact, recv_to_eof

from .base import case, client, hostport, listener, local, relay

def curl_get(dst, src):
    """GET / with curl -k from interface src; returns (status, body)."""
    url = f"https://{hostport(*dst)}/"
    p = subprocess.run(["curl", "-sk", "--max-time", "10", "--interface", src,
                        "-o", "-", "-w", "\n%{http_code}", url],
                       capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace")
    body, _, status = out.rpartition("\n")
    check(p.returncode == 0, f"curl {url} from {src} exited {p.returncode}: {p.stderr!r}")
    return status, body


def wait_log(read_lines, count, what):
    return harness.wait_until(lambda: len(read_lines()) >= count and read_lines(), 10,
                              f"{count} lines in {what}")


@case("nginx_tls_backend", budget=90)
def nginx_tls_backend(ctx):
    """Relay on 127.0.0.1 and [::1] to nginx's IPv4 proxy_protocol listener."""
    nginx = Nginx(ctx, ctx.session_dir)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port), ("::1", port)], ("127.0.0.1", nginx.port4))
    expected = []  # (client address, client port or None)
    for src, dst in (("127.0.0.2", "127.0.0.1"), ("::1", "::1")):
        status, body, cport = https_get(ctx, (dst, port), src)
        expect_body(status, body, src, "python TLS")
        expected.append((src, cport))
    if shutil.which("curl"):
        status, body = curl_get(("127.0.0.1", port), "127.0.0.3")
        expect_body(status, body, "127.0.0.3", "curl")
        expected.append(("127.0.0.3", None))
    else:
        status, body, cport = https_get(ctx, ("127.0.0.1", port), "127.0.0.3")
        expect_body(status, body, "127.0.0.3", "python TLS")
        expected.append(("127.0.0.3", cport))
    lines = wait_log(nginx.access_lines, len(expected), "nginx access log")
    check(len(lines) == len(expected), f"nginx logged {len(lines)} requests: {lines}")
    for line, (src, cport) in zip(lines, expected):
        fields = line.split()
        check(fields[0] == src, f"nginx access log has {fields[0]}, want {src}: {line!r}")
        if cport is not None:
            check(fields[1] == str(cport), f"nginx logged port {fields[1]}, want {cport}")
        check(fields[2] == "127.0.0.1", f"nginx saw the relay as {fields[2]}: {line!r}")


@case("nginx_tls_backend_ipv6", budget=90)
def nginx_tls_backend_ipv6(ctx):
    """The relay reaching its backend over IPv6 ([::1]) carries a v4 client."""
    nginx = Nginx(ctx, ctx.session_dir)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("::1", nginx.port6))
    status, body, cport = https_get(ctx, ("127.0.0.1", port), "127.0.0.2")
    expect_body(status, body, "127.0.0.2", "python TLS")
    lines = wait_log(nginx.access_lines, 1, "nginx access log")
    fields = lines[0].split()
    check(fields[:2] == ["127.0.0.2", str(cport)], f"nginx logged {lines[0]!r}")
    check(fields[2] == "::1", f"nginx saw the relay as {fields[2]}, want ::1")


@case("haproxy_accept_proxy", budget=60)
def haproxy_accept_proxy(ctx):
    echo = PlainEcho()
    ctx.on_cleanup(echo.close)
    hap = HAProxy(ctx, echo.port)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port), ("::1", port)], ("127.0.0.1", hap.port4))
    expected = []
    for src, dst in (("127.0.0.2", "127.0.0.1"), ("::1", "::1")):
        c = client(ctx, (dst, port), src)
        cport = local(c)[1]
        c.sendall(b"ping through haproxy\n")
        check(recv_exact(c, 21) == b"ping through haproxy\n",
              f"echo through haproxy from {src} failed")
        c.shutdown(socket.SHUT_WR)
        check(recv_to_eof(c) == b"", f"data after echo from {src}")
        c.close()
        expected.append(f"src={src}:{cport} dst={dst}:{port}")
    lines = wait_log(hap.log_lines, len(expected), "HAProxy log")
    for want in expected:
        check(any(want in line for line in lines),
              f"HAProxy log lacks '{want}': {lines}")


@case("backend_without_proxy_protocol_diagnosed", budget=90)
def backend_without_proxy_protocol(ctx):
    """nginx on `listen ... ssl` without proxy_protocol answers the header with
    a plain-text 400: the relay says the backend does not expect PROXY
    protocol, quoting the answer, and counts it."""
    nginx = Nginx(ctx, ctx.session_dir, proxy_protocol=False)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", nginx.port4))
    err = handshake_fails(ctx, ("127.0.0.1", port), "127.0.0.2")
    harness.wait_until(lambda: "probably does not expect PROXY protocol" in rl.stderr(), 5,
                       "the relay to name the backend's mistake")
    line = next(ln for ln in rl.stderr().splitlines() if "does not expect PROXY" in ln)
    # Which the answer follows depends on whether the ClientHello rode with
    # the header; the quote of nginx's 400 is there either way.
    check(f"backend 127.0.0.1:{nginx.port4} answered the " in line
          and 'with "HTTP/1.1 400 Bad Request"' in line,
          f"the line does not quote nginx's answer: {line}")
    ctx.note(f"client saw {err}")


@case("backend_closing_after_header_diagnosed")
def backend_closing_after_header(ctx):
    """A backend that closes right after reading the header, before a byte,
    is reported; one that closes after the client did is not."""
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port))
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    c.sendall(b"\x16\x03\x01\x00\x05hello")
    b = be.accept(timeout=5)
    read_proxy_header(b)
    b.close()
    harness.wait_until(lambda: "probably does not expect PROXY protocol" in rl.stderr(), 5,
                       "the relay to report the backend closing")
    check("after the PROXY header, before sending a byte" in rl.stderr(), "no reason given")
    c2 = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    c2.shutdown(socket.SHUT_WR)
    b2 = be.accept(timeout=5)
    read_proxy_header(b2)
    check(recv_to_eof(b2) == b"", "the backend got bytes from a client that sent none")
    b2.close()
    recv_to_eof(c2)
    rl.finish()
    check(rl.stderr().count("does not expect PROXY protocol") == 1,
          "a backend closing after its client was reported too")
    check(f"backend 127.0.0.1:{be.port}: 1 connections where it seemed not to expect PROXY "
          "protocol" in rl.stderr(), "the backend's refusal was not counted for it")


@case("nginx_tls_backend_unix_socket", budget=90)
def nginx_unix_backend(ctx):
    """--backend unix:/path: nginx's `listen unix:... ssl proxy_protocol`
    answers with the client's own address."""
    nginx = Nginx(ctx, ctx.session_dir)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], None, "--backend", f"unix:{nginx.unix_path}")
    status, body, _ = https_get(ctx, ("127.0.0.1", port), "127.0.0.7")
    expect_body(status, body, "127.0.0.7", "python TLS through a unix-socket backend")
