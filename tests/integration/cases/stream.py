"""Byte streams through the relay: bulk integrity, half-close both ways, resets,
and what a client sees when the backend refuses, never answers or goes idle."""

import os
import socket
import threading
import time

import harness
from harness import check
from peers.clients import Streamer
from peers.helper import Helper
from peers.proxy_header import read_proxy_header
from peers.wire import recv_exact, recv_to_eof, set_linger_reset

from .base import case, client, listener, relay, roundtrip, wait_closed

INTEGRITY_CONNS = 32
INTEGRITY_BYTES = 256 << 20  # each way, over all connections


def send_async(sock, data, shut=True):
    """sendall (then shutdown(SHUT_WR)) on a thread; join() it with a bound."""
    result = {}

    def run():
        try:
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.result = result
    return t


def join_send(t, timeout, what):
    t.join(timeout)
    check(not t.is_alive(), f"{what}: send still blocked after {timeout}s")
    check("error" not in t.result, f"{what}: send failed: {t.result.get('error')!r}")


def mib(n):
    return f"{n / (1 << 20):.0f} MiB"


def integrity(ctx, splice, wrapper=(), extra=()):
    """32 connections at once, 8 MiB each way on each, random write and read
    sizes on both ends; sha256 of what each side sent must match what the
    other received, and every header must name its own client."""
    per_conn = INTEGRITY_BYTES // INTEGRITY_CONNS
    common = ["--conns", str(INTEGRITY_CONNS), "--bytes", str(per_conn), "--timeout", "100"]
    backend = Helper(ctx, "integrity-backend", ["integrity-backend"] + common)
    bport = backend.wait_json("port", 10)["port"]
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", bport), "--workers", "2",
          "--splice", splice, *extra, wrapper=wrapper)
    start = time.monotonic()
    cl = Helper(ctx, "integrity-client", ["integrity-client"] + common + [
        "--target", f"127.0.0.1:{port}", "--source", "127.0.0.2"])
    cres = cl.wait_json("results", 130)["results"]
    bres = backend.wait_json("results", 20)["results"]
    elapsed = time.monotonic() - start
    errors = {k: v for k, v in cres.items() if any(e.endswith("_error") for e in v)}
    check(len(cres) == INTEGRITY_CONNS, f"client has {len(cres)} results, want "
                                        f"{INTEGRITY_CONNS}; with errors: {errors}; "
                                        f"its stderr: {harness.tail(cl.stderr())}")
    up = down = 0
    for key, c in sorted(cres.items()):
        errors = {k: v for k, v in c.items() if k.endswith("_error")}
        check(not errors, f"client connection {key}: {errors}")
        b = bres.get(key)
        check(b is not None, f"backend saw no header with client port {key}; "
                             f"it has {sorted(bres)[:5]}...")
        errors = {k: v for k, v in b.items() if k.endswith("_error")}
        check(not errors, f"backend connection {key}: {errors}")
        check(b["src"] == ["127.0.0.2", int(key)] and b["dst"] == ["127.0.0.1", port],
              f"connection {key}: header src {b['src']} dst {b['dst']}")
        check(c["sent"] == b["recv"] and c["sent_sha"] == b["recv_sha"],
              f"client->backend on {key}: sent {c['sent']} bytes, backend got {b['recv']}, "
              f"sha256 {'equal' if c['sent_sha'] == b['recv_sha'] else 'differs'}")
        check(b["sent"] == c["recv"] and b["sent_sha"] == c["recv_sha"],
              f"backend->client on {key}: sent {b['sent']} bytes, client got {c['recv']}, "
              f"sha256 {'equal' if b['sent_sha'] == c['recv_sha'] else 'differs'}")
        up += c["sent"]
        down += b["sent"]
    check(up >= INTEGRITY_BYTES and down >= INTEGRITY_BYTES, f"only {up} up / {down} down")
    ctx.note(f"{mib(up)} up + {mib(down)} down in {elapsed:.1f}s")


# The same bytes through each data path: splice once a direction runs hot
# (auto), plain copies through the relay's buffers (never), splice throughout.
for _splice in ("auto", "never", "always"):
    case(f"integrity_256mib_each_way_splice_{_splice}", budget=150)(
        lambda ctx, _s=_splice: integrity(ctx, _s))


@case("integrity_256mib_each_way_uring_without_bundles", per_io=False, budget=150)
def integrity_without_bundles(ctx):
    """The io_uring copy path with one buffer per recv completion, as on
    kernels before 6.10 (this one has bundles, so the test turns them off)."""
    integrity(ctx, "never", wrapper=("env", "RINGRELAY_NO_BUNDLE=1"), extra=("--io", "uring"))


@case("half_close_client_first")
def half_close_client_first(ctx):
    """Client sends 4 MiB and shuts its write side: the backend gets all of it,
    then EOF; its reply and close then reach the client, then EOF."""
    be = listener(ctx)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port))
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2", timeout=10)
    request, reply = os.urandom(4 << 20), os.urandom(1 << 20)
    t = send_async(c, request)
    b = be.accept(timeout=5)
    _, _, rest = read_proxy_header(b)
    got = rest + recv_to_eof(b)
    join_send(t, 10, "client")
    check(got == request, f"backend got {len(got)} bytes before EOF, client sent {len(request)}"
                          + ("" if len(got) != len(request) else " (contents differ)"))
    t = send_async(b, reply)
    back = recv_to_eof(c)
    join_send(t, 10, "backend")
    check(back == reply, f"client got {len(back)} bytes before EOF, backend sent {len(reply)}")


@case("half_close_backend_first")
def half_close_backend_first(ctx):
    """Backend sends 1 MiB and shuts its write side: the client gets it, then
    EOF, and can still send 2 MiB that the backend receives in full."""
    be = listener(ctx)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port))
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2", timeout=10)
    b = be.accept(timeout=5)
    _, _, rest = read_proxy_header(b)
    check(rest == b"", f"unexpected bytes after header: {rest[:32]!r}")
    greeting, late = os.urandom(1 << 20), os.urandom(2 << 20)
    t = send_async(b, greeting)
    got = recv_to_eof(c)
    join_send(t, 10, "backend")
    check(got == greeting, f"client got {len(got)} bytes before EOF, backend sent {len(greeting)}")
    t = send_async(c, late)
    got = recv_to_eof(b)
    join_send(t, 10, "client after EOF")
    check(got == late, f"backend got {len(got)} bytes of the client's {len(late)} sent after EOF")
    b.close()


def ended_soon(streamer, since, bound, side):
    """Both directions of streamer ended, by EOF or an error, within bound s."""
    check(streamer.join(bound + 12), f"{side} still blocked")
    for what, end in (("receive", streamer.recv_end), ("send", streamer.send_end)):
        when, how = end
        check(how not in ("TimeoutError", "stopped"),
              f"{side} {what} never ended: relay did not abort this side ({how})")
        check(when - since < bound,
              f"{side} {what} ended {when - since:.1f}s after the reset ({how}), want < {bound}s")
    return f"{side}: recv {streamer.recv_end[1]}, send {streamer.send_end[1]}"


@case("client_reset_mid_stream")
def client_reset(ctx):
    """The client resets (SO_LINGER 0) while data flows both ways: the
    backend's connection ends within 5 s, and the relay serves new clients."""
    be = listener(ctx)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port))
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    t = send_async(c, os.urandom(1 << 20), shut=False)
    b = be.accept(timeout=5)
    read_proxy_header(b)
    bs = Streamer(b)
    recv_exact(c, 256 << 10)
    join_send(t, 10, "client")
    harness.wait_until(lambda: bs.received >= (1 << 20) - (64 << 10), 10,
                       "the backend to receive the client's 1 MiB")
    set_linger_reset(c)
    reset_at = time.monotonic()
    c.close()
    ctx.note(ended_soon(bs, reset_at, 5, "backend"))
    roundtrip(ctx, ("127.0.0.1", port), be)


@case("backend_reset_mid_stream")
def backend_reset(ctx):
    """The backend resets while data flows both ways: the client's connection
    ends within 5 s, and the relay serves new clients."""
    be = listener(ctx)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port))
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    b = be.accept(timeout=5)
    read_proxy_header(b)
    cs = Streamer(c)
    t = send_async(b, os.urandom(1 << 20), shut=False)
    recv_exact(b, 1 << 20)
    join_send(t, 10, "backend")
    set_linger_reset(b)
    reset_at = time.monotonic()
    b.close()
    ctx.note(ended_soon(cs, reset_at, 5, "client"))
    roundtrip(ctx, ("127.0.0.1", port), be)


@case("backend_refused")
def backend_refused(ctx):
    """Nothing listens on the backend port: the client is closed within 3 s;
    once a backend appears there the same relay serves it."""
    dead = harness.free_port()
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", dead))
    for _ in range(2):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
        try:
            c.sendall(b"hello?")
        except OSError:
            pass  # already closed by the relay: fine
        took, how = wait_closed(c, 10)
        check(took < 3, f"client closed only after {took:.1f}s ({how})")
    rl.check_alive()
    be = listener(ctx, port=dead)
    roundtrip(ctx, ("127.0.0.1", port), be)
    ctx.note(f"client saw {how} after {took:.2f}s")


@case("backend_connect_timeout", budget=60)
def backend_connect_timeout(ctx):
    """A backend whose accept queue is full (backlog 0, one connection never
    accepted) drops SYNs; with --connect-timeout 1s the client is closed after
    about a second: not before 0.5 s, and within 10 s."""
    blackhole = socket.socket()
    ctx.on_cleanup(blackhole.close)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    client(ctx, blackhole.getsockname())  # fills the queue
    probe = socket.socket()
    ctx.on_cleanup(probe.close)
    probe.settimeout(0.3)
    try:
        probe.connect(blackhole.getsockname())
        raise harness.TestSkip("this kernel does not drop SYNs on a full accept queue")
    except socket.timeout:
        pass
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], blackhole.getsockname(), "--connect-timeout", "1s")
    seen = []
    for _ in range(2):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
        c.sendall(b"anyone?")
        took, how = wait_closed(c, 12)
        check(0.5 <= took < 10, f"client closed after {took:.2f}s ({how}), want 0.5..10 s")
        seen.append(f"{took:.2f}s {how}")
    rl.check_alive()
    ctx.note("closed after " + ", ".join(seen))


IDLE_TIMEOUT = 0.6  # seconds; short, so a timer not restarted by traffic shows
PING_EVERY = 0.15


@case("idle_timeout")
def idle_timeout(ctx):
    """--idle-timeout 600ms closes a silent connection (both sides) after
    about that long, while one with a byte each way every 0.15 s stays open
    for 2.5 s."""
    be = listener(ctx)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port),
          "--idle-timeout", f"{int(IDLE_TIMEOUT * 1000)}ms")
    idle = client(ctx, ("127.0.0.1", port), "127.0.0.2", timeout=12)
    idle.sendall(b"i")
    b_idle = be.accept(timeout=5)
    _, _, rest = read_proxy_header(b_idle)
    if not rest:
        recv_exact(b_idle, 1)
    outcome = {}

    def watch():
        try:
            outcome["r"] = wait_closed(idle, 12)
        except harness.TestFailure as e:
            outcome["error"] = str(e)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    busy = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    busy.sendall(b"b")
    b_busy = be.accept(timeout=5)
    _, _, rest = read_proxy_header(b_busy)
    if not rest:
        recv_exact(b_busy, 1)
    busy_start = time.monotonic()
    try:
        while time.monotonic() - busy_start < 2.5:
            busy.sendall(b"p")
            check(recv_exact(b_busy, 1) == b"p", "busy connection: ping garbled")
            b_busy.sendall(b"q")
            check(recv_exact(busy, 1) == b"q", "busy connection: pong garbled")
            time.sleep(PING_EVERY)  # pacing the traffic, not waiting for anything
    except (EOFError, OSError) as e:
        raise harness.TestFailure(
            f"busy connection (a byte each way every {PING_EVERY}s) was closed after "
            f"{time.monotonic() - busy_start:.2f}s with --idle-timeout {IDLE_TIMEOUT}s: "
            f"{type(e).__name__}") from None
    watcher.join(12)
    check("r" in outcome, f"idle client: {outcome.get('error', 'connection still open')}")
    took, how = outcome["r"]
    check(IDLE_TIMEOUT / 2 <= took < 10,
          f"idle client closed after {took:.2f}s ({how}), want {IDLE_TIMEOUT / 2}..10 s")
    took_b, how_b = wait_closed(b_idle, 10)
    ctx.note(f"idle client closed after {took:.2f}s ({how}), backend side {how_b}")


@case("splice_auto_picks_bulk_only")
def splice_auto(ctx):
    """--splice auto moves a bulk stream to splice(2) and leaves
    request/response traffic in copy mode (the debug log says which)."""
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port), "--workers", "1",
               "--log-level", "debug")
    chat = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    chat.sendall(b"q" * 1024)
    bchat = be.accept(timeout=5)
    _, _, first = read_proxy_header(bchat)
    pending = 1024 - len(first)
    for i in range(1000):  # 1 MiB each way in 1 KiB request/response pairs
        if pending:
            recv_exact(bchat, pending)
        bchat.sendall(b"a" * 1024)
        check(recv_exact(chat, 1024) == b"a" * 1024, f"reply {i} garbled")
        if i < 999:
            chat.sendall(b"q" * 1024)
            pending = 1024
    check("splicing" not in rl.stderr(), "request/response traffic was moved to splice")
    bulk = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    t = send_async(bulk, os.urandom(1 << 20) * 16)
    bbulk = be.accept(timeout=5)
    got = len(read_proxy_header(bbulk)[2])
    while True:
        data = bbulk.recv(1 << 20)
        if not data:
            break
        got += len(data)
    join_send(t, 10, "bulk client")
    check(got == 16 << 20, f"backend got {got} of {16 << 20} bytes")
    check("client: bulk transfer: splicing" in rl.stderr(), "a 16 MiB upload was not spliced")
    ctx.note("1 MiB of 1 KiB exchanges stayed in copy mode; 16 MiB upload spliced")
