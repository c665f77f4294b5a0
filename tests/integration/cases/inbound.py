"""Inbound PROXY headers: accepted from trusted sources only, at byte 0,
their address carried on to the backend; refused from anyone else; and a
plain diagnosis when a trusted hop sends something else."""

import struct

import harness
from harness import check
from peers.daemons import Front
from peers.proxy_header import (PP2_SIGNATURE, proxy_v2, read_header_then,
                                 read_proxy_header_or_reset)
from peers.wire import recv_exact, recv_to_eof, send_in_pieces

from .base import case, client, listener, relay, wait_closed

TRUSTED = "127.0.0.1"   # the front proxies and the test's own "front" sockets
UNTRUSTED = "127.0.0.2"


def inbound_relay(ctx, be, mode="v2", *extra):
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port), "--proxy-protocol-in", mode,
               "--trusted-source", f"{TRUSTED}/32", *extra)
    return rl, port


def recv_until_closed(sock):
    """Everything sock receives until EOF or reset."""
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def expect_relayed(be, src, dst, payload):
    """The backend gets the relay's header naming src -> dst, then payload."""
    b = be.accept(timeout=5)
    info = read_header_then(b, payload)
    check(info.get("src") == src and info.get("dst") == dst,
          f"backend header says {info.get('src')} -> {info.get('dst')}, want {src} -> {dst}")
    return b


@case("inbound_v2_from_trusted_source")
def inbound_v2(ctx):
    """A trusted source's v2 header, arriving in three pieces with the first
    client bytes behind it: the backend's header carries the address from
    it, and the bytes after it arrive intact."""
    be = listener(ctx)
    _, port = inbound_relay(ctx, be)
    c = client(ctx, ("127.0.0.1", port), TRUSTED)
    hdr = proxy_v2(("203.0.113.7", 4444), ("198.51.100.1", 443))
    send_in_pieces(c, hdr + b"hello", [5, 14])
    b = expect_relayed(be, ("203.0.113.7", 4444), ("198.51.100.1", 443), b"hello")
    b.sendall(b"back")
    check(recv_exact(c, 4) == b"back", "reply did not reach the client")


@case("inbound_v1_and_v6_with_any")
def inbound_v1(ctx):
    """--proxy-protocol-in any takes a v1 line (here TCP6) and a v2 block."""
    be = listener(ctx)
    _, port = inbound_relay(ctx, be, "any")
    c = client(ctx, ("127.0.0.1", port), TRUSTED)
    c.sendall(b"PROXY TCP6 2001:db8::5 2001:db8::1 5555 443\r\nGET / HTTP/1.1\r\n\r\n")
    expect_relayed(be, ("2001:db8::5", 5555), ("2001:db8::1", 443), b"GET / HTTP/1.1\r\n\r\n")
    c2 = client(ctx, ("127.0.0.1", port), TRUSTED)
    c2.sendall(proxy_v2(("192.0.2.9", 1), ("192.0.2.10", 2)) + b"x")
    expect_relayed(be, ("192.0.2.9", 1), ("192.0.2.10", 2), b"x")


@case("inbound_local_uses_the_connection")
def inbound_local(ctx):
    """A v2 LOCAL header (a health check) is taken off the stream, and the
    connection's own endpoints go in the backend's header."""
    be = listener(ctx)
    _, port = inbound_relay(ctx, be)
    c = client(ctx, ("127.0.0.1", port), TRUSTED)
    local_hdr = PP2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    c.sendall(local_hdr + b"ping")
    expect_relayed(be, (TRUSTED, c.getsockname()[1]), ("127.0.0.1", port), b"ping")


@case("inbound_header_from_untrusted_refused")
def inbound_untrusted(ctx):
    """A client outside --trusted-source that sends a header (forging its
    address) is reset and counted; the forged bytes reach no backend. The
    same client without a header is relayed under its own address."""
    be = listener(ctx)
    rl, port = inbound_relay(ctx, be)
    c = client(ctx, ("127.0.0.1", port), UNTRUSTED)
    c.sendall(proxy_v2(("6.6.6.6", 666), ("127.0.0.1", port)) + b"GET / HTTP/1.1\r\n\r\n")
    _, how = wait_closed(c, 5)
    harness.wait_until(lambda: "is not a --trusted-source: refused" in rl.stderr(), 5,
                       "the relay to log the refusal")
    check(f"client {UNTRUSTED}:" in rl.stderr(), "the refusal does not name the client")
    # Without a header the same client is served under its own address. The
    # relay may have connected for the refused one too (it connects at once
    # for untrusted clients): that backend connection got the relay's header
    # only, whenever it is accepted.
    c2 = client(ctx, ("127.0.0.1", port), UNTRUSTED)
    c2.sendall(b"plain")
    want = (UNTRUSTED, c2.getsockname()[1])
    while True:
        b = be.accept(timeout=5)
        _, info, rest = read_proxy_header_or_reset(b)
        if info and info.get("src") == want:
            break
        got = rest + recv_until_closed(b)
        check(b"GET /" not in got and b"6.6.6.6" not in got,
              f"forged bytes reached the backend: {got!r}")
    if len(rest) < 5:
        rest += recv_exact(b, 5 - len(rest))
    check(rest == b"plain", f"backend got {rest!r}")
    rl.finish()
    check("1 from untrusted clients refused" in rl.stderr(), "refusal not counted")
    ctx.note(f"client saw {how}")


@case("inbound_header_timeout")
def inbound_timeout(ctx):
    """A trusted source that sends nothing is closed after --header-timeout,
    logged and counted, and no backend connection is made for it."""
    be = listener(ctx)
    rl, port = inbound_relay(ctx, be, "v2", "--header-timeout", "300ms")
    c = client(ctx, ("127.0.0.1", port), TRUSTED)
    took, how = wait_closed(c, 5)
    check(took >= 0.25, f"closed after {took:.2f}s, before the 300ms header timeout")
    harness.wait_until(lambda: "no PROXY header within 300 ms" in rl.stderr(), 5,
                       "the relay to log the header timeout")
    check(not be.pending(), "a backend connection was made for a client with no header")
    ctx.note(f"closed after {took:.2f}s ({how})")


@case("inbound_bad_header_named")
def inbound_bad(ctx):
    """A malformed header from a trusted source is refused with its reason;
    an HTTP request where a header belongs is named as such, with the fix."""
    be = listener(ctx)
    rl, port = inbound_relay(ctx, be)
    c = client(ctx, ("127.0.0.1", port), TRUSTED)
    bad = bytearray(proxy_v2(("192.0.2.1", 1), ("192.0.2.2", 2)))
    bad[12] = 0x31  # version 3
    c.sendall(bytes(bad))
    wait_closed(c, 5)
    harness.wait_until(lambda: "bad PROXY header: v2 version is not 2" in rl.stderr(), 5,
                       "the relay to log the bad version")
    c = client(ctx, ("127.0.0.1", port), TRUSTED)
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_closed(c, 5)
    harness.wait_until(lambda: "expected a PROXY header, got an HTTP request" in rl.stderr(), 5,
                       "the relay to name the HTTP request")
    check(not be.pending(), "a backend connection was made for a refused client")


def behind_front(ctx, kind, mode, src, payload):
    """client -> a real front proxy of this kind -> ringrelay -> backend: the
    backend sees the client's own address, not the front's."""
    be = listener(ctx)
    _, port = inbound_relay(ctx, be, mode)
    front = Front(ctx, kind, f"127.0.0.1:{port}")
    c = client(ctx, ("127.0.0.1", front.port), src)
    c.sendall(payload)
    expect_relayed(be, (src, c.getsockname()[1]), ("127.0.0.1", front.port), payload)


@case("inbound_behind_haproxy_send_proxy_v2")
def behind_haproxy(ctx):
    """HAProxy with send-proxy-v2 in front, the relay taking v2."""
    behind_front(ctx, "haproxy", "v2", "127.0.0.3", b"through haproxy")


@case("inbound_behind_nginx_stream_proxy_protocol")
def behind_nginx_stream(ctx):
    """nginx stream with proxy_protocol on (v1) in front, the relay taking any."""
    behind_front(ctx, "nginx-stream", "any", "127.0.0.4", b"through nginx")


@case("inbound_diagnoses_nginx_http_proxy_pass")
def behind_nginx_http(ctx):
    """The classic: nginx's http-block proxy_pass https:// cannot send a
    header, so the relay gets a ClientHello; it says so, and how to fix it."""
    be = listener(ctx)
    rl, port = inbound_relay(ctx, be)
    front = Front(ctx, "nginx-http", f"127.0.0.1:{port}")
    c = client(ctx, ("127.0.0.1", front.port), "127.0.0.5")
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = recv_to_eof(c)
    check(reply.startswith(b"HTTP/1.1 502"), f"nginx answered {reply[:40]!r}, expected a 502")
    harness.wait_until(lambda: "expected a PROXY header, got a TLS ClientHello" in rl.stderr(),
                       5, "the relay to name the ClientHello")
    line = next(ln for ln in rl.stderr().splitlines() if "TLS ClientHello" in ln)
    check("proxy_protocol on" in line and "--proxy-protocol-in off" in line,
          f"the line gives no fix: {line}")
    check(not be.pending(), "a backend connection was made for a refused client")
