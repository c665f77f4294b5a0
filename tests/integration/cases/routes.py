"""Routing by the ClientHello's server name: real ClientHellos (Python's
OpenSSL), exact and wildcard names, the default for everything else, a
ClientHello in pieces, and a full TLS session to nginx through a route."""

import time

import harness
from harness import check, cpu_seconds
from kit.tls import client_hello, expect_body, handshake_fails, https_get
from peers.backends import PlainEcho
from peers.daemons import HAProxy, Nginx
from peers.proxy_header import proxy_v2, read_header_then, read_proxy_header
from peers.wire import recv_exact, send_in_pieces

from .base import case, client, listener, relay, wait_closed


def routed_relay(ctx, default, routes, *extra):
    port = harness.free_port()
    args = []
    for name, be in routes:
        args += ["--route", f"{name}=127.0.0.1:{be.port}"]
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", default.port), *args, *extra)
    return rl, port


def lands_on(be, src, first_bytes):
    """be gets the relay's header for src, then exactly first_bytes."""
    b = be.accept(timeout=5)
    info = read_header_then(b, first_bytes)
    check(info.get("src") == src, f"header says {info.get('src')}, want {src}")


@case("sni_routes_exact_wildcard_default")
def sni_routes(ctx):
    """api.example -> A, *.example -> B (any depth), others and non-TLS ->
    the default; the ClientHello reaches the backend byte for byte."""
    a, b, d = listener(ctx), listener(ctx), listener(ctx)
    rl, port = routed_relay(ctx, d, [("api.example", a), ("*.example", b)])
    for name, want in (("api.example", a), ("API.Example", a), ("www.example", b),
                       ("x.y.example", b), ("example", d), ("other.test", d), (None, d)):
        # For an IP address OpenSSL sends no server_name at all.
        hello = client_hello(name or "127.0.0.1")
        c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
        c.sendall(hello)
        lands_on(want, ("127.0.0.2", c.getsockname()[1]), hello)
        for other in (a, b, d):
            check(other is want or not other.pending(), f"{name}: a second backend was used")
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    c.sendall(b"GET / HTTP/1.1\r\n\r\n")
    lands_on(d, ("127.0.0.2", c.getsockname()[1]), b"GET / HTTP/1.1\r\n\r\n")
    rl.finish()
    check("SNI routes: 4 connections routed, 0 without" in rl.stderr(), "routes not counted")


@case("sni_client_hello_in_pieces")
def sni_in_pieces(ctx):
    """A ClientHello split over two TLS records and sent in three segments
    is still routed by its name and delivered whole."""
    a, d = listener(ctx), listener(ctx)
    rl, port = routed_relay(ctx, d, [("pieces.example", a)])
    hello = client_hello("pieces.example", alpn=None)
    msg = hello[5:]
    record = lambda m: b"\x16\x03\x01" + len(m).to_bytes(2, "big") + m  # noqa: E731
    stream = record(msg[:60]) + record(msg[60:])
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    send_in_pieces(c, stream, [3, 40])
    lands_on(a, ("127.0.0.2", c.getsockname()[1]), stream)
    check(not d.pending(), "the default backend was used")
    # Half a ClientHello held back: the relay waits for the rest without
    # polling in a loop (SO_RCVLOWAT), then routes it.
    c = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    c.sendall(stream[:100])
    cpu0, t0 = cpu_seconds(rl.pid), time.monotonic()
    time.sleep(1.0)  # a window to measure CPU use in, not synchronisation
    used, wall = cpu_seconds(rl.pid) - cpu0, time.monotonic() - t0
    check(used < 0.3 * wall, f"relay used {used:.2f}s of CPU in {wall:.2f}s waiting: spinning")
    c.sendall(stream[100:])
    lands_on(a, ("127.0.0.3", c.getsockname()[1]), stream)
    ctx.note(f"{used:.2f}s CPU in {wall:.2f}s while waiting for the rest")


@case("sni_peek_timeout")
def sni_timeout(ctx):
    """Half a ClientHello and then silence: closed after --peek-timeout,
    logged, no backend connection made."""
    a, d = listener(ctx), listener(ctx)
    rl, port = routed_relay(ctx, d, [("a.example", a)], "--peek-timeout", "300ms")
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    c.sendall(client_hello("a.example")[:50])
    took, how = wait_closed(c, 5)
    harness.wait_until(lambda: "no whole TLS ClientHello within 300 ms" in rl.stderr(), 5,
                       "the relay to log the peek timeout")
    check(not a.pending() and not d.pending(), "a backend connection was made")
    rl.finish()
    check("0 connections routed, 1 without a whole ClientHello" in rl.stderr(), "not counted")
    ctx.note(f"closed after {took:.2f}s ({how})")


@case("sni_route_to_nginx_tls", budget=90)
def sni_nginx(ctx):
    """A full TLS session to nginx (proxy_protocol) through a route: the
    default backend is a dead port, so only the route can serve it."""
    nginx = Nginx(ctx, ctx.session_dir)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", harness.free_port()),
          "--route", f"localhost=127.0.0.1:{nginx.port4}")
    status, body, _ = https_get(ctx, ("127.0.0.1", port), "127.0.0.6")
    expect_body(status, body, "127.0.0.6", "python TLS with SNI localhost")


def header_tlvs(hdr):
    """{type: value} of a v2 header's TLVs (after a TCP4/TCP6 block)."""
    alen = {0x11: 12, 0x21: 36}.get(hdr[13], 0)
    tlvs, p = {}, 16 + alen
    while p < len(hdr):
        t, n = hdr[p], int.from_bytes(hdr[p + 1:p + 3], "big")
        tlvs[t] = hdr[p + 3:p + 3 + n]
        p += 3 + n
    check(p == len(hdr), f"TLVs overrun the header: {hdr.hex()}")
    return tlvs


@case("tlvs_authority_alpn_unique_id_crc32c_to_haproxy")
def tlvs_haproxy(ctx):
    """--tlvs authority,alpn,unique_id,crc32c: HAProxy (which rejects a
    header whose CRC32C is wrong) logs the server name and the unique id,
    and the id is the one in the relay's log."""
    echo = PlainEcho()
    ctx.on_cleanup(echo.close)
    hap = HAProxy(ctx, echo.port)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", hap.port4),
               "--tlvs", "authority,alpn,unique_id,crc32c", "--log-level", "debug")
    hello = client_hello("tlv.example")
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    c.sendall(hello)
    check(recv_exact(c, len(hello)) == hello, "the echo through HAProxy failed")
    c.close()
    lines = harness.wait_until(lambda: hap.log_lines(), 10, "HAProxy to log the connection")
    uid = next(ln.split("unique_id ")[1] for ln in rl.stderr().splitlines() if "unique_id " in ln)
    check(f"authority=tlv.example uid={uid}" in lines[0], f"HAProxy logged {lines[0]!r}, "
          f"want authority=tlv.example uid={uid}")


@case("tlvs_exact_bytes_and_pass_through")
def tlvs_exact(ctx):
    """Behind a trusted front: the AWS-style 0xEA TLV it sent is copied, its
    UNIQUE_ID is not (not listed), AUTHORITY and ALPN come from the
    ClientHello, and the CRC32C covers the whole header."""
    be = listener(ctx)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port), "--proxy-protocol-in", "v2",
          "--trusted-source", "127.0.0.1", "--tlvs", "authority,alpn,crc32c,0xEA")
    inbound = bytearray(proxy_v2(("198.51.100.7", 1234), ("203.0.113.1", 443)))
    extra = b"\xea\x00\x09\x01vpce-123" + b"\x05\x00\x03abc"
    inbound[14:16] = (12 + len(extra)).to_bytes(2, "big")
    hello = client_hello("pass.example", alpn=("h2", "http/1.1"))
    c = client(ctx, ("127.0.0.1", port), "127.0.0.1")
    c.sendall(bytes(inbound) + extra + hello)
    b = be.accept(timeout=5)
    hdr, info, rest = read_proxy_header(b)
    check(info["src"] == ("198.51.100.7", 1234), f"src {info['src']}")
    tlvs = header_tlvs(hdr)
    check(tlvs.get(0xEA) == b"\x01vpce-123", f"0xEA not copied: {tlvs}")
    check(0x05 not in tlvs, "an inbound UNIQUE_ID was copied though not listed")
    check(tlvs.get(0x02) == b"pass.example", f"AUTHORITY {tlvs.get(0x02)}")
    check(tlvs.get(0x01) == b"h2", f"ALPN {tlvs.get(0x01)}")
    check(list(tlvs)[-1] == 0x03, "CRC32C is not the last TLV")
    rest += recv_exact(b, len(hello) - len(rest)) if len(rest) < len(hello) else b""
    check(rest == hello, "the ClientHello did not follow the header intact")


@case("sni_route_backend_without_proxy_protocol_counted", budget=90)
def sni_route_no_pp(ctx):
    """The diagnosis and its count name the routed backend, not --backend."""
    nginx = Nginx(ctx, ctx.session_dir, proxy_protocol=False)
    port, dead = harness.free_port(), harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", dead),
               "--route", f"localhost=127.0.0.1:{nginx.port4}")
    handshake_fails(ctx, ("127.0.0.1", port), "127.0.0.2")
    harness.wait_until(lambda: "probably does not expect PROXY protocol" in rl.stderr(), 5,
                       "the relay to name the routed backend's mistake")
    rl.finish()
    check(f"backend 127.0.0.1:{nginx.port4}: 1 connections where it seemed not to expect "
          "PROXY protocol" in rl.stderr(), "not counted for the routed backend")
    check(f"backend 127.0.0.1:{dead}:" not in rl.stderr(), "counted for --backend")


@case("tlvs_header_longer_than_the_headroom")
def tlvs_long_header(ctx):
    """A 230-byte server name makes the header with its AUTHORITY TLV longer
    than the room kept in front of the first client bytes: it goes out
    whole, on its own, and the ClientHello follows it intact."""
    be = listener(ctx)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port), "--tlvs", "authority,crc32c")
    name = ".".join(["a" * 60, "b" * 60, "c" * 60, "d" * 45]) + ".example"
    hello = client_hello(name, alpn=None)
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    c.sendall(hello)
    b = be.accept(timeout=5)
    hdr, info, rest = read_proxy_header(b)
    check(len(hdr) > 128, f"the header is only {len(hdr)} bytes: the test proves nothing")
    check(header_tlvs(hdr).get(0x02) == name.encode(), "AUTHORITY is not the server name")
    rest += recv_exact(b, len(hello) - len(rest)) if len(rest) < len(hello) else b""
    check(rest == hello, "the ClientHello did not follow the header intact")
