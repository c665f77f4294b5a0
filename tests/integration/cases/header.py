"""The PROXY header, byte for byte, as a raw Python backend receives it, and
the client's bytes right behind it with nothing lost or added."""

import os
import socket

import harness
from harness import check
from peers.proxy_header import proxy_v2
from peers.wire import recv_exact, recv_to_eof

from .base import case, client, hexdiff, listener, local, relay, remote

# Fixed expectations written out by hand, independent of proxy_v2, so a
# bug shared by the encoder here and the relay cannot hide.
SIG = bytes.fromhex("0D0A0D0A000D0A515549540A")


def exchange(ctx, listen, connect_to, src, mode, payload):
    """Client at src sends payload through a relay listening on listen, then
    half-closes; returns ((client address, address it connected to),
    everything the backend received)."""
    be = listener(ctx)
    port = listen[1]
    relay(ctx, [listen], ("127.0.0.1", be.port), "--proxy-protocol", mode)
    c = client(ctx, (connect_to, port), src)
    ends = (local(c), remote(c))
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    b = be.accept(timeout=5)
    got = recv_to_eof(b)
    return ends, got


def check_bytes(got, want, what):
    check(got == want, f"{what}: {hexdiff(got, want)}")


@case("header_v2_tcp4")
def header_v2_tcp4(ctx):
    port = harness.free_port()
    payload = b"GET / HTTP/1.0\r\n\r\n"
    ends, got = exchange(ctx, ("127.0.0.1", port), "127.0.0.1", "127.0.0.2", "v2", payload)
    sport = ends[0][1]
    want = (SIG + b"\x21\x11\x00\x0c" + bytes([127, 0, 0, 2]) + bytes([127, 0, 0, 1])
            + sport.to_bytes(2, "big") + port.to_bytes(2, "big") + payload)
    check_bytes(got, want, "TCP4 header from 127.0.0.2")


@case("header_v2_tcp6")
def header_v2_tcp6(ctx):
    port = harness.free_port()
    payload = b"\x00\x01binary\xffpayload"
    ends, got = exchange(ctx, ("::1", port), "::1", "::1", "v2", payload)
    sport = ends[0][1]
    loop6 = bytes(15) + b"\x01"
    want = (SIG + b"\x21\x21\x00\x24" + loop6 + loop6 + sport.to_bytes(2, "big")
            + port.to_bytes(2, "big") + payload)
    check_bytes(got, want, "TCP6 header from ::1")


@case("header_v2_mapped_v4_on_v6_listener")
def header_v2_mapped(ctx):
    """A [::] listener: a v4 client is sent as TCP4, a v6 client as TCP6."""
    port = harness.free_port()
    be = listener(ctx)
    relay(ctx, [("::", port)], ("127.0.0.1", be.port))
    for src, dst in (("127.0.0.2", "127.0.0.1"), ("::1", "::1")):
        c = client(ctx, (dst, port), src)
        sport = local(c)[1]
        c.sendall(b"hi")
        c.shutdown(socket.SHUT_WR)
        got = recv_to_eof(be.accept(timeout=5))
        want = proxy_v2((src, sport), (dst, port)) + b"hi"
        check_bytes(got, want, f"client {src} to [::]:{port}")
        fam = 0x11 if "." in src else 0x21
        check(got[13] == fam, f"client {src}: family byte {got[13]:#x}, want {fam:#x}")


@case("header_v1")
def header_v1(ctx):
    port = harness.free_port()
    be = listener(ctx)
    relay(ctx, [("127.0.0.1", port), ("::1", port)], ("127.0.0.1", be.port),
          "--proxy-protocol", "v1")
    for src, dst, fam in (("127.0.0.2", "127.0.0.1", "TCP4"), ("::1", "::1", "TCP6")):
        c = client(ctx, (dst, port), src)
        sport = local(c)[1]
        c.sendall(b"payload")
        c.shutdown(socket.SHUT_WR)
        got = recv_to_eof(be.accept(timeout=5))
        want = f"PROXY {fam} {src} {dst} {sport} {port}\r\n".encode() + b"payload"
        check(got == want, f"v1 from {src}: got {got!r}, want {want!r}")


@case("header_off")
def header_off(ctx):
    port = harness.free_port()
    payload = os.urandom(4096)
    _, got = exchange(ctx, ("127.0.0.1", port), "127.0.0.1", "127.0.0.2", "off", payload)
    check_bytes(got, payload, "--proxy-protocol off")


@case("header_then_first_bytes")
def header_then_first_bytes(ctx):
    """The client writes 1 MiB at once on connect, before the relay can have
    reached the backend: header, then exactly those bytes."""
    port = harness.free_port()
    payload = os.urandom(1 << 20)
    ends, got = exchange(ctx, ("127.0.0.1", port), "127.0.0.1", "127.0.0.3", "v2", payload)
    want = proxy_v2(*ends) + payload
    check_bytes(got, want, "header + 1 MiB")


@case("header_without_client_data")
def header_without_client_data(ctx):
    """A server-speaks-first backend: the header arrives although the client
    sends nothing, and the backend's greeting reaches the client."""
    port = harness.free_port()
    be = listener(ctx)
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port))
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    want = proxy_v2(local(c), remote(c))
    b = be.accept(timeout=5)
    got = recv_exact(b, len(want))
    check_bytes(got, want, "header for a silent client")
    b.sendall(b"220 hello\r\n")
    check(recv_exact(c, 11) == b"220 hello\r\n", "greeting did not reach the client")
    c.sendall(b"QUIT\r\n")
    check(recv_exact(b, 6) == b"QUIT\r\n", "client reply did not reach the backend")
