"""Running from a configuration file: backend pools balance, retry a failed
connect on another server (never after a byte was written), refuse at once
when no server has room, and listeners keep their own settings."""

import socket

import harness
from harness import check
from kit import config as cfg
from peers.proxy_header import proxy_v2, read_header_then, read_proxy_header

from .base import case, client, listener, served_by, wait_closed


@case("pool_round_robin_weights")
def pool_weights(ctx):
    """Weights 3 and 1: of 8 clients, 6 reach the first server, 2 the second
    (one worker: each worker keeps its own round-robin turn)."""
    a, b = listener(ctx), listener(ctx)
    port = harness.free_port()
    cfg.start(ctx, cfg.document(
        workers=1, listeners=[cfg.listener("l", port)],
        backends=[cfg.backend("x", [cfg.server(a.port, weight=3), cfg.server(b.port, weight=1)])]))
    hits = [served_by([a, b], "127.0.0.2", b"w", port) for _ in range(8)]
    check(hits.count(0) == 6 and hits.count(1) == 2, f"servers reached: {hits}")


@case("pool_client_ip_hash_sticks")
def pool_hash(ctx):
    """client_ip_hash: every connection from one address reaches one server."""
    backends = [listener(ctx) for _ in range(4)]
    port = harness.free_port()
    cfg.start(ctx, cfg.document(
        listeners=[cfg.listener("l", port)],
        backends=[cfg.backend("x", [b.port for b in backends], balance="client_ip_hash")]))
    seen = {}
    for src in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
        hits = {served_by(backends, src, b"h", port) for _ in range(4)}
        check(len(hits) == 1, f"{src} reached servers {hits}")
        seen[src] = hits.pop()
    ctx.note(f"servers by client: {seen}")


@case("pool_retry_on_refused_connect")
def pool_retry(ctx):
    """A server that refuses: with retries, every client reaches the live one;
    without, the clients sent to the dead one are closed."""
    live = listener(ctx)
    dead = harness.free_port()
    servers = [dead, live.port]
    port = harness.free_port()
    rl = cfg.start(ctx, cfg.document(listeners=[cfg.listener("l", port)],
                                     backends=[cfg.backend("x", servers, retries=1)]))
    for _ in range(6):
        check(served_by([live], "127.0.0.2", b"r", port) == 0, "not served")
    check("trying another server" in rl.stderr(), "the retry was not logged")
    rl.finish()
    port2 = harness.free_port()
    cfg.start(ctx, cfg.document(workers=1, listeners=[cfg.listener("l", port2)],
                                backends=[cfg.backend("x", servers, retries=0)]))
    closed = 0
    for _ in range(4):
        c = client(ctx, ("127.0.0.1", port2), "127.0.0.2")
        c.sendall(b"r")
        try:
            b = live.accept(timeout=0.5)
            read_header_then(b, b"r")
            b.close()
        except TimeoutError:
            wait_closed(c, 5)
            closed += 1
    check(closed == 2, f"{closed} of 4 clients were closed, want the 2 sent to the dead server")


@case("pool_retry_on_connect_timeout", budget=60)
def pool_retry_timeout(ctx):
    """A server that drops SYNs: after connect_timeout the next server takes
    the client, which is served."""
    blackhole = socket.socket()
    ctx.on_cleanup(blackhole.close)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    client(ctx, blackhole.getsockname())  # fills the accept queue
    live = listener(ctx)
    port = harness.free_port()
    rl = cfg.start(ctx, cfg.document(
        listeners=[cfg.listener("l", port)],
        backends=[cfg.backend("x", [blackhole.getsockname()[1], live.port],
                              retries=1, connect_timeout="300ms")]))
    check(served_by([live], "127.0.0.2", b"t", port) == 0, "not served")
    check("connect timed out after 300 ms; trying another server" in rl.stderr(),
          "the timeout and retry were not logged")


@case("pool_full_refuses_at_once")
def pool_full(ctx):
    """max_connections 1 on the only server: a second client is closed at
    once while the first holds it, and counted."""
    be = listener(ctx)
    port = harness.free_port()
    rl = cfg.start(ctx, cfg.document(
        listeners=[cfg.listener("l", port)],
        backends=[cfg.backend("x", [cfg.server(be.port, max_connections=1)])]))
    first = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    first.sendall(b"1")
    read_header_then(be.accept(timeout=5), b"1")
    second = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    took, how = wait_closed(second, 5)
    check(not be.pending(), "the full server got a second connection")
    rl.finish()
    check("1 clients refused: no server up with room" in rl.stderr(), "not counted")
    ctx.note(f"second client closed after {took:.2f}s ({how})")


@case("config_listeners_keep_their_settings")
def config_listeners(ctx):
    """Two listeners from one file: a plain one to backend x (v1 headers) and
    one taking inbound v2 from a trusted source to backend y (v2)."""
    x, y = listener(ctx), listener(ctx)
    p1, p2 = harness.free_port(), harness.free_port()
    cfg.start(ctx, cfg.document(
        listeners=[cfg.listener("plain", p1, default_backend="x"),
                   cfg.listener("behind-lb", [p2], proxy_protocol_in="v2",
                                trusted_sources=["127.0.0.1/32"], default_backend="y")],
        backends=[cfg.backend("x", [x.port], proxy_protocol="v1"), cfg.backend("y", [y.port])]))
    c = client(ctx, ("127.0.0.1", p1), "127.0.0.2")
    c.sendall(b"one")
    hdr, info, rest = read_proxy_header(x.accept(timeout=5))
    check(info["version"] == 1 and info["src"][0] == "127.0.0.2", f"x got {hdr!r}")
    c = client(ctx, ("127.0.0.1", p2), "127.0.0.1")
    c.sendall(proxy_v2(("198.51.100.4", 4444), ("203.0.113.1", 443)) + b"two")
    info = read_header_then(y.accept(timeout=5), b"two")
    check(info["version"] == 2 and info["src"] == ("198.51.100.4", 4444), f"y got {info}")


@case("config_flags_override_the_file")
def config_override(ctx):
    """--proxy-protocol on the command line wins over the file's backends;
    --listen alongside -c is refused with one line."""
    be = listener(ctx)
    port = harness.free_port()
    doc = cfg.document(listeners=[cfg.listener("l", port)], backends=[cfg.backend("x", [be.port])])
    cfg.start(ctx, doc, "--proxy-protocol", "v1")
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    c.sendall(b"v")
    _, info, _ = read_proxy_header(be.accept(timeout=5))
    check(info["version"] == 1, f"header version {info['version']}, want 1 from the flag")
    import subprocess
    p = subprocess.run([ctx.binary, "-c", cfg.write(ctx, doc), "--listen", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode == 2 and "give one or the other" in p.stderr, f"{p.returncode} {p.stderr}")
