"""The fault suite: hostile and broken peers against a running relay. Each
test asserts what the client sees, what the counters and the access log
say, and that no descriptor is left behind once the fault is over.

They run last, with the rest of the integration suite."""

import os
import select
import signal
import socket
import threading
import time

import harness
from harness import check, cpu_seconds
from kit import config as cfg
from kit.stats import access_log, backend_stats, listener_stats, named, stats_json
from kit.tls import client_hello
from peers.helper import Helper, start_echo
from peers.impair import both, delay, loss
from peers.netns import Namespace
from peers.proxy_header import proxy_v2, read_header_then, read_proxy_header
from peers.wire import recv_exact, recv_to_eof, set_linger_reset

from .base import case, client, listener


def start(ctx, listeners, servers, *extra, backend=None, **settings):
    """A relay with a stats socket and a JSON access log: listeners, then
    backend "app" on servers (ports), backend settings being backend and
    top-level ones settings; extra are command-line arguments."""
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    log = os.path.join(ctx.tmpdir, "access.log")
    doc = cfg.document(listeners, [cfg.backend("app", servers, **(backend or {}))],
                       stats_socket=sock, access_log={"path": log, "format": "json"}, **settings)
    rl = cfg.start(ctx, doc, *extra)
    rl.sock, rl.log = sock, log
    return rl


def socket_fds(pid):
    """The relay's descriptors that are not pipes: the splice pipes a worker
    made stay in its pool for the next bulk transfer."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except OSError:
            pass
    return n


MEMORY_SLACK = 256 << 10


def allocated(rl):
    """Bytes the relay's allocator holds (jemalloc's count through the stats
    socket); None in builds without jemalloc (the sanitizers')."""
    return stats_json(rl.sock)["process"].get("memory_allocated")


def resting(rl):
    """What the relay holds at rest: descriptors (pipes aside) and memory."""
    return socket_fds(rl.pid), allocated(rl)


def settle(rl, baseline, what):
    """Waits until the relay holds no more descriptors (pipes aside) than at
    baseline, then checks its allocator holds no more than MEMORY_SLACK
    beyond it: nothing the fault touched is left behind."""
    fds, memory = baseline
    harness.wait_until(lambda: socket_fds(rl.pid) <= fds, 10,
                       f"the relay's descriptors to return to {fds} after {what}")
    now = allocated(rl)
    check(memory is None or now <= memory + MEMORY_SLACK,
          f"after {what} the relay holds {now - memory if now else 0} bytes more than before")


def outcome(sock, timeout):
    """How the relay ended sock: 'eof', 'reset', or 'open' if it did not."""
    sock.settimeout(timeout)
    try:
        return "eof" if sock.recv(1) == b"" else "data"
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "reset"


@case("fault_slowloris_proxy_header")
def slowloris_header(ctx):
    """A trusted source that sends its PROXY header one byte every 200 ms:
    closed when header_timeout (1 s) runs out, however much it keeps
    sending; counted, logged as header_timeout, its descriptor freed."""
    be = listener(ctx)
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("pp", port, proxy_protocol_in="v2",
                                  trusted_sources=["127.0.0.1/32"], header_timeout="1s")],
               [be.port])
    baseline = resting(rl)
    header = proxy_v2(("192.0.2.1", 1000), ("127.0.0.1", port))
    c = client(ctx, ("127.0.0.1", port))
    start_t = time.monotonic()
    ended = None
    for b in header:
        try:
            c.sendall(bytes([b]))
        except OSError:
            ended = "send failed"
            break
        if outcome(c, 0.2) != "open":
            ended = "closed"
            break
    took = time.monotonic() - start_t
    check(ended is not None, "the relay waited for the whole slow header")
    check(0.9 <= took < 5, f"closed after {took:.2f}s, header_timeout is 1s")
    check(not be.pending(), "a backend connection was opened for it")
    settle(rl, baseline, "the slow client")
    pp = listener_stats(rl.sock, "pp")
    check(pp["header_timeouts"] == 1 and pp["ends"]["header_timeout"] == 1, f"counters: {pp}")
    rl.finish()
    check([r["end"] for r in access_log(rl.log)] == ["header_timeout"], "access log")
    ctx.note(f"closed after {took:.2f}s of a byte every 200 ms")


@case("fault_slowloris_clienthello")
def slowloris_hello(ctx):
    """A client that trickles its ClientHello where routes need it: closed at
    peek_timeout, counted, logged, freed; a prompt client is served meanwhile."""
    be = listener(ctx)
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("tls", port, peek_timeout="1s",
                                  routes=[cfg.route("a.example", "app")])], [be.port])
    hello = client_hello("a.example", ["h2"])
    baseline = resting(rl)
    slow = client(ctx, ("127.0.0.1", port))
    slow.sendall(hello[:5])
    prompt = client(ctx, ("127.0.0.1", port))
    prompt.sendall(hello)
    b = be.accept(timeout=5)
    _, info, rest = read_proxy_header(b)
    check(info and info["src"] == prompt.getsockname()[:2], "the prompt client was not relayed")
    # Read all of it: a close with bytes unread would be a reset.
    check(rest + recv_exact(b, len(hello) - len(rest)) == hello, "the hello was altered")
    b.close()
    prompt.close()
    start_t = time.monotonic()
    for i in range(5, 40):
        try:
            slow.sendall(hello[i:i + 1])
        except OSError:
            break
        if outcome(slow, 0.1) != "open":
            break
    took = time.monotonic() - start_t
    check(outcome(slow, 3) in ("eof", "reset"), "the slow client is still open")
    settle(rl, baseline, "the slow client")
    tls = listener_stats(rl.sock, "tls")
    check(tls["peek_timeouts"] == 1 and tls["routed"] == 1, f"counters: {tls}")
    rl.finish()
    ends = sorted(r["end"] for r in access_log(rl.log))
    check(ends == ["backend_closed", "peek_timeout"], f"access log: {ends}")
    ctx.note(f"slow ClientHello closed after {took:.2f}s")


@case("fault_partial_handshake_then_fin_ends_at_once")
def partial_handshake_fin(ctx):
    """1 to 10 bytes of a ClientHello (on a listener with routes), or of a
    trusted source's PROXY header, then shutdown(SHUT_WR): nothing more can
    come, so the relay ends each at once (the timeouts are 60 s; each is
    closed within 10 s) with its own end reason, counted and logged, no
    backend connection made and nothing left behind."""
    be = listener(ctx)
    tls_port, pp_port = harness.free_port(), harness.free_port()
    rl = start(ctx, [cfg.listener("tls", tls_port, peek_timeout="60s",
                                  routes=[cfg.route("a.example", "app")]),
                     cfg.listener("pp", pp_port, proxy_protocol_in="v2",
                                  trusted_sources=["127.0.0.1/32"], header_timeout="60s")],
               [be.port])
    hello = client_hello("a.example", ["h2"])
    header = proxy_v2(("192.0.2.1", 1000), ("127.0.0.1", pp_port))
    baseline = resting(rl)
    ended = []
    for port, first in ((tls_port, hello), (pp_port, header)):
        for k in range(1, 11):
            c = client(ctx, ("127.0.0.1", port))
            c.sendall(first[:k])
            c.shutdown(socket.SHUT_WR)
            how = outcome(c, 10)
            check(how in ("eof", "reset"), f"{k} bytes then FIN on port {port}: still {how}")
            ended.append(how)
            c.close()
    check(not be.pending(), "a backend connection was opened for a partial handshake")
    settle(rl, baseline, "the partial handshakes")
    for name in ("tls", "pp"):
        ends = listener_stats(rl.sock, name)["ends"]
        check(ends["handshake_closed"] == 10, f"{name}: ends {ends}")
    rl.finish()
    ends = [r["end"] for r in access_log(rl.log)]
    check(ends == ["handshake_closed"] * 20, f"access log: {ends}")
    check(rl.stderr().count("closed after") >= 1, "not logged")
    ctx.note(f"20 partial handshakes ended at once ({ended.count('eof')} with a FIN)")


SILENT = 5000


@case("fault_5000_silent_connections", budget=90)
def silent(ctx):
    """5,000 connections that never send a byte to a listener that needs a
    ClientHello: each closed at peek_timeout, all counted, no backend
    connection opened, descriptors back to where they were; a real client
    is served while they hang."""
    be = listener(ctx)
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("tls", port, peek_timeout="2s",
                                  routes=[cfg.route("a.example", "app")])], [be.port],
               "--max-connections", "8000")
    baseline = resting(rl)
    socks = []
    for _ in range(SILENT):
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        socks.append(s)
    ctx.on_cleanup(lambda: [s.close() for s in socks])
    harness.wait_until(lambda: listener_stats(rl.sock, "tls")["active"] == SILENT,
                       10, f"{SILENT} connections to be open")
    real = client(ctx, ("127.0.0.1", port))
    real.sendall(client_hello("a.example", ["h2"]))
    b = be.accept(timeout=5)
    read_proxy_header(b)
    b.close()
    harness.wait_until(lambda: listener_stats(rl.sock, "tls")["active"] <= 1,
                       15, "the silent connections to time out")
    tls = listener_stats(rl.sock, "tls")
    check(tls["peek_timeouts"] == SILENT, f"{tls['peek_timeouts']} peek timeouts")
    check(be.pending() == 0, "silent clients reached the backend")
    closed = sum(outcome(s, 0.5) != "open" for s in socks[:50])
    check(closed == 50, f"only {closed} of 50 sampled silent clients were closed")
    real.close()
    for s in socks:
        s.close()
    settle(rl, baseline, f"{SILENT} silent clients")
    ctx.note(f"{SILENT} closed at peek_timeout; descriptors and memory back to their baseline")


def web_relay(ctx):
    """A raw backend, and a relay with one listener "web" in front of it."""
    be = listener(ctx)
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("web", port)], [be.port])
    return be, port, rl


def one_line(rl, end):
    """The run's only access-log line, which must end with end."""
    rl.finish()
    rec = access_log(rl.log)
    check(len(rec) == 1 and rec[0]["end"] == end, f"access log, want one {end}: {rec}")
    return rec[0]


def reset_mid_stream(ctx, side):
    """One side ("client" or "backend") resets after the first exchange:
    the other side sees a reset, the counters and the access log say
    SIDE_reset with 4 bytes moved each way, nothing leaks."""
    be, port, rl = web_relay(ctx)
    baseline = resting(rl)
    c = client(ctx, ("127.0.0.1", port))
    c.sendall(b"ping")
    b = be.accept()
    read_header_then(b, b"ping")
    b.sendall(b"pong")
    check(recv_exact(c, 4) == b"pong", "first exchange")
    resetter, other = (c, b) if side == "client" else (b, c)
    set_linger_reset(resetter)
    resetter.close()
    check(outcome(other, 5) == "reset", f"the other side of the {side} did not see a reset")
    settle(rl, baseline, "the reset")
    web = listener_stats(rl.sock, "web")
    check(web["ends"][f"{side}_reset"] == 1 and web["active"] == 0, f"counters: {web}")
    rec = one_line(rl, f"{side}_reset")
    check(rec["from_client"] == 4 and rec["from_server"] == 4, f"bytes moved: {rec}")


@case("fault_backend_resets_mid_stream")
def backend_reset(ctx):
    reset_mid_stream(ctx, "backend")


@case("fault_client_resets_mid_stream")
def client_reset(ctx):
    reset_mid_stream(ctx, "client")


@case("fault_client_half_close_keeps_reading")
def half_close(ctx):
    """A client that sends its request, half-closes, and keeps reading a
    4 MiB answer: it gets every byte, then the relay closes cleanly."""
    be, port, rl = web_relay(ctx)
    baseline = resting(rl)
    c = client(ctx, ("127.0.0.1", port))
    c.sendall(b"GET")
    c.shutdown(socket.SHUT_WR)
    b = be.accept()
    read_header_then(b, b"GET")
    check(b.recv(1) == b"", "the backend did not get the FIN")
    body = os.urandom(4 << 20)
    t = threading.Thread(target=lambda: (b.sendall(body), b.close()))
    t.start()
    got = recv_to_eof(c)
    t.join()
    check(got == body, f"{len(got)} of {len(body)} bytes reached the half-closed client")
    settle(rl, baseline, "the transfer")
    rl.finish()
    rec = access_log(rl.log)
    check(rec[0]["end"] == "client_closed" and rec[0]["from_server"] == len(body), f"log: {rec}")


def closed_port():
    """A loopback port nothing listens on (bound, then let go)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@case("fault_backend_refuses")
def backend_refuses(ctx):
    """Nothing listens at the only server's address: the client is closed at
    once, the refused connect is counted for the server, and the access log
    says connect_failed."""
    port, dead = harness.free_port(), closed_port()
    rl = start(ctx, [cfg.listener("web", port)], [dead])
    baseline = resting(rl)
    c = client(ctx, ("127.0.0.1", port))
    c.sendall(b"hello")
    check(outcome(c, 5) == "eof", "the client was not closed")
    settle(rl, baseline, "the refused connect")
    st = stats_json(rl.sock)
    app, web = named(st["backends"], "app"), named(st["listeners"], "web")
    fails = app["servers"][0]["connect_failures"]
    check(fails["refused"] == 1 and web["ends"]["connect_failed"] == 1 and web["active"] == 0,
          f"counters: {web}, {app}")
    rec = one_line(rl, "connect_failed")
    check(rec["server"] == f"127.0.0.1:{dead}" and rec["from_server"] == 0, f"log: {rec}")


@case("fault_backend_resets_before_any_byte")
def backend_resets_at_once(ctx):
    """A backend that takes the PROXY header and resets without a byte (a
    listener not expecting PROXY protocol does this): the client sees a
    reset, the relay says what is probably wrong, the server's no_proxy
    counter and the access log (backend_reset) record it."""
    be, port, rl = web_relay(ctx)
    baseline = resting(rl)
    c = client(ctx, ("127.0.0.1", port))
    c.sendall(b"\x16\x03\x01")
    b = be.accept()
    read_proxy_header(b)
    set_linger_reset(b)
    b.close()
    check(outcome(c, 5) == "reset", "the client did not see a reset")
    settle(rl, baseline, "the reset")
    server = backend_stats(rl.sock, "app")["servers"][0]
    check(server["no_proxy"] == 1 and server["active"] == 0, f"server counters: {server}")
    harness.wait_until(lambda: "probably does not expect PROXY protocol" in rl.stderr(), 5,
                       "the relay to say what is probably wrong")
    one_line(rl, "backend_reset")


@case("fault_backend_closes_before_any_byte")
def backend_closes_at_once(ctx):
    """A backend that takes the PROXY header and closes (FIN) without a
    byte while the client keeps sending: the relay says what is probably
    wrong once, and counts it once, though later sends to it fail too."""
    be, port, rl = web_relay(ctx)
    baseline = resting(rl)
    c = client(ctx, ("127.0.0.1", port))
    c.sendall(b"\x16\x03\x01")
    b = be.accept()
    read_header_then(b, b"\x16\x03\x01")
    b.close()
    check(outcome(c, 5) == "eof", "the backend's close did not reach the client")
    sent = 0
    for _ in range(50):  # the client's half is still open: its bytes go on
        try:
            c.sendall(b"x" * 1000)
            sent += 1
        except OSError:
            break  # the relay reset it, once the backend answered with a reset
        time.sleep(0.01)  # paces the sends; nothing waits on it
    c.close()
    settle(rl, baseline, "the close")
    server = backend_stats(rl.sock, "app")["servers"][0]
    check(server["no_proxy"] == 1, f"diagnosed {server['no_proxy']} times, want once "
                                   f"({sent} sends after the close)")
    rl.finish()
    check(rl.stderr().count("probably does not expect PROXY protocol") == 1,
          "the diagnosis was not logged exactly once")


@case("fault_backend_stalls_forever")
def backend_stalls(ctx):
    """A backend that accepts, reads and never answers: idle_timeout (1s
    here) closes both sides; the counters and the access log say
    idle_timeout."""
    be = listener(ctx)
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("web", port)], [be.port], backend={"idle_timeout": "1s"})
    baseline = resting(rl)
    c = client(ctx, ("127.0.0.1", port))
    c.sendall(b"request")
    b = be.accept()
    read_header_then(b, b"request")
    check(outcome(c, 10) == "eof", "the client was not closed after the idle timeout")
    check(outcome(b, 5) == "eof", "the stalled backend was not closed")
    settle(rl, baseline, "the idle timeout")
    web = listener_stats(rl.sock, "web")
    check(web["ends"]["idle_timeout"] == 1 and web["active"] == 0, f"counters: {web}")
    rec = one_line(rl, "idle_timeout")
    check(rec["from_client"] == 7 and rec["from_server"] == 0, f"bytes moved: {rec}")


FULL, OVER = 20, 30


@case("fault_max_connections_refuses_quickly")
def max_connections_full(ctx):
    """max_connections 20 held open: 30 more clients are each reset at once
    (none waits in the backlog, none reaches the backend), counted as
    refused and logged as refused_limit with their address; the 20 keep
    flowing; once they close the relay is back to its baseline and serves."""
    echo = start_echo(ctx).port
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("web", port)], [echo], max_connections=FULL, workers=2)
    baseline = resting(rl)
    held = []
    for _ in range(FULL):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
        c.sendall(b"x")
        check(recv_exact(c, 1) == b"x", "a connection within the limit was not relayed")
        held.append(c)
    ends = []
    for _ in range(OVER):
        try:
            c = client(ctx, ("127.0.0.1", port), "127.0.0.3")
        except ConnectionResetError:  # the reset came before connect() returned
            ends.append("reset")
            continue
        ends.append(outcome(c, 5))
        c.close()
    check(ends.count("reset") == OVER, f"over the limit: {ends.count('reset')} of {OVER} reset, "
                                       f"others {sorted(set(ends) - {'reset'})}")
    for c in held:
        c.sendall(b"y")
        check(recv_exact(c, 1) == b"y", "a held connection stopped flowing")
    st = stats_json(rl.sock)
    web, app = named(st["listeners"], "web"), named(st["backends"], "app")
    check(web["refused"] == OVER and web["ends"]["refused_limit"] == OVER and
          web["active"] == FULL and app["conns"] == FULL, f"counters: {web}, backend {app}")
    for c in held:
        c.close()
    settle(rl, baseline, "closing the held connections")
    again = client(ctx, ("127.0.0.1", port), "127.0.0.4")
    again.sendall(b"ok")
    check(recv_exact(again, 2) == b"ok", "not served once the held connections closed")
    again.close()
    rl.finish()
    refused = [r for r in access_log(rl.log) if r["end"] == "refused_limit"]
    check(len(refused) == OVER and all(r["client"].startswith("127.0.0.3:") for r in refused),
          f"access log: {len(refused)} refused_limit lines, want {OVER}")
    ids = [r["id"] for r in access_log(rl.log)]
    check(len(set(ids)) == len(ids), f"access log ids repeat: {len(ids) - len(set(ids))} "
                                     f"of {len(ids)} lines share an id ({refused[0]['id']})")
    ctx.note(f"{OVER} over {FULL} reset at once, counted and logged")


def limit_fds(pid, spare):
    """Lowers pid's open-file limit to leave it spare descriptors. The limit
    bounds descriptor numbers, so it is set above the lowest free one."""
    import resource
    used = {int(n) for n in os.listdir(f"/proc/{pid}/fd")}
    lowest_free = next(n for n in range(len(used) + 1) if n not in used)
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free + spare, old[1]))
    return old


HELD, WAITING = 10, 5


@case("fault_fd_exhaustion_pauses_and_recovers", budget=60)
def fd_exhaustion(ctx):
    """The relay's open-file limit lowered to what it holds (10 relayed
    connections open): new clients cannot be accepted, so accepting pauses
    with a back-off (counted, logged), the open connections keep flowing,
    no core spins; health checks that cannot get a socket leave the server
    up; when six of them close, the five waiting clients are accepted and
    served, and every connection ends up in the access log."""
    echo = start_echo(ctx).port
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("web", port)], [echo], backend={
        "health_check": {"mode": "tcp", "interval": "100ms", "fall": 2}})
    baseline = resting(rl)
    held = []
    for _ in range(HELD):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
        c.sendall(b"x")
        check(recv_exact(c, 1) == b"x", "a connection was not relayed before the fault")
        held.append(c)
    limit_fds(rl.pid, 0)  # every accept and every new backend socket fails
    waiting = []
    for i in range(WAITING):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.3")
        c.sendall(b"w%d" % i)
        waiting.append(c)
    harness.wait_until(lambda: "Too many open files" in rl.stderr(), 5,
                       "the relay to log the failed accept")
    cpu0, t0 = cpu_seconds(rl.pid), time.monotonic()
    for c in held:
        c.sendall(b"y")
        check(recv_exact(c, 1) == b"y", "an open connection stopped while out of fds")
    time.sleep(1.0)  # a window to measure CPU use in, not synchronisation
    spent, wall = cpu_seconds(rl.pid) - cpu0, time.monotonic() - t0
    check(spent < 0.5 * wall, f"relay used {spent:.2f}s of CPU in {wall:.2f}s without "
                              f"descriptors: spinning")
    early = [outcome(c, 0.01) for c in waiting]
    check(early == ["open"] * WAITING, f"waiting clients before fds were freed: {early}")
    check("health check not run" in rl.stderr(), "no health check met the shortage")
    for c in held[:6]:
        c.close()
    for i, c in enumerate(waiting):
        c.settimeout(10)
        check(recv_exact(c, 2) == b"w%d" % i, f"waiting client {i} was not served "
                                                       f"once descriptors were free")
    st = stats_json(rl.sock)
    errors = sum(w["accept_errors"] for w in st["workers"])
    check(errors > 0, f"no accept error counted: {st['workers']}")
    server = named(st["backends"], "app")["servers"][0]
    check(server["state"] == "up" and server["health_changes"] == 0,
          f"our own shortage marked the server down: {server}")
    for c in held[6:] + waiting:
        c.close()
    settle(rl, baseline, "the fault")
    web = listener_stats(rl.sock, "web")
    check(web["accepted"] == HELD + WAITING and web["active"] == 0 and
          web["ends"]["local_error"] == 0, f"counters: {web}")
    rl.finish()
    ends = [r["end"] for r in access_log(rl.log)]
    check(len(ends) == HELD + WAITING and set(ends) == {"client_closed"},
          f"access log: {len(ends)} lines, ends {sorted(set(ends))}")
    ctx.note(f"{errors} failed accepts, {spent:.2f}s CPU in {wall:.2f}s while out of fds; "
             f"{WAITING} waiting clients served after")


@case("fault_no_fd_for_the_backend_waits")
def no_fd_for_backend(ctx):
    """One descriptor spare: a client is accepted but its backend socket
    cannot be made. It waits instead of being dropped: served once the limit
    allows, or closed after connect_timeout (local_error, logged) if not."""
    import resource
    echo = start_echo(ctx).port
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("web", port)], [echo], backend={"connect_timeout": "1s"},
               workers=1)
    baseline = resting(rl)
    old = limit_fds(rl.pid, 1)
    a = client(ctx, ("127.0.0.1", port))
    a.sendall(b"first")
    harness.wait_until(lambda: "waiting for a descriptor" in rl.stderr(), 5,
                       "the relay to say the client waits for a descriptor")
    resource.prlimit(rl.pid, resource.RLIMIT_NOFILE, old)
    a.settimeout(5)
    check(recv_exact(a, 5) == b"first", "the waiting client was not served")
    a.close()
    settle(rl, baseline, "the first client")
    limit_fds(rl.pid, 1)
    b = client(ctx, ("127.0.0.1", port))
    b.sendall(b"second")
    check(outcome(b, 10) in ("eof", "reset"), "the client waited past connect_timeout")
    harness.wait_until(lambda: "no descriptor for its backend connection" in rl.stderr(), 5,
                       "the relay to log why it closed the client")
    resource.prlimit(rl.pid, resource.RLIMIT_NOFILE, old)
    settle(rl, baseline, "the second client")
    web = listener_stats(rl.sock, "web")
    server = backend_stats(rl.sock, "app")["servers"][0]
    check(web["ends"]["local_error"] == 1 and web["ends"]["client_closed"] == 1 and
          sum(server["connect_failures"].values()) == 0, f"counters: {web}; server {server}")
    rl.finish()
    ends = sorted(r["end"] for r in access_log(rl.log))
    check(ends == ["client_closed", "local_error"], f"access log ends: {ends}")


FLOOD, PER_SOURCE = 200, 50


@case("fault_one_source_floods")
def flood(ctx):
    """One address opens 200 connections as fast as it can against
    max_connections_per_source 50: exactly 50 stay open (and are relayed),
    150 are reset at once and counted; another address is served meanwhile;
    closing the 50 gives their places back."""
    echo = start_echo(ctx).port
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("web", port, max_connections_per_source=PER_SOURCE)], [echo])
    baseline = resting(rl)
    socks = []
    for _ in range(FLOOD):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    ctx.on_cleanup(lambda: [s.close() for s in socks])
    harness.wait_until(lambda: listener_stats(rl.sock, "web")["accepted"] == FLOOD,
                       10, "every flood connection to be accepted")
    # The resets have all arrived before any socket is judged: a 50 ms look
    # at each is then enough to tell open from reset, however slow the build.
    harness.wait_until(lambda: len(select.select(socks, [], [], 0)[0]) >= FLOOD - PER_SOURCE,
                       10, f"{FLOOD - PER_SOURCE} flood connections to be reset")
    ends = [outcome(s, 0.05) for s in socks]
    still = [s for s, how in zip(socks, ends) if how == "open"]
    check(len(still) == PER_SOURCE and ends.count("reset") == FLOOD - PER_SOURCE,
          f"{len(still)} open, {ends.count('reset')} reset of {FLOOD}")
    for s in still[:5]:
        s.sendall(b"x")
        check(s.recv(1) == b"x", "a flood connection within the limit is not relayed")
    other = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    other.sendall(b"hi")
    check(recv_exact(other, 2) == b"hi", "another address was not served")
    web = listener_stats(rl.sock, "web")
    check(web["refused_source"] == FLOOD - PER_SOURCE and
          web["ends"]["source_limit"] == FLOOD - PER_SOURCE, f"counters: {web}")
    for s in socks:
        s.close()
    other.close()
    settle(rl, baseline, "the flood")
    again = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    again.sendall(b"ok")
    check(recv_exact(again, 2) == b"ok", "the source's places were not given back")
    again.close()
    rl.finish()
    ctx.note(f"{PER_SOURCE} of {FLOOD} kept, {FLOOD - PER_SOURCE} reset at once")


@case("fault_source_limit_counts_the_client_behind_a_proxy")
def flood_behind_proxy(ctx):
    """Behind a trusted proxy every connection comes from the proxy's
    address: the per-source limit counts the client its PROXY header names,
    so one client is held to 2 while another behind the same proxy is not."""
    be = listener(ctx)
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("pp", port, proxy_protocol_in="v2",
                                  trusted_sources=["127.0.0.1/32"],
                                  max_connections_per_source=2)], [be.port])
    conns, ends = [], []
    for src in ["192.0.2.1"] * 3 + ["192.0.2.2"]:
        c = client(ctx, ("127.0.0.1", port))
        c.sendall(proxy_v2((src, 4000 + len(conns)), ("127.0.0.1", port)) + b"x")
        conns.append(c)
        ends.append(outcome(c, 0.3))
    check(ends == ["open", "open", "reset", "open"], f"outcomes: {ends}")
    pp = listener_stats(rl.sock, "pp")
    check(pp["refused_source"] == 1 and pp["header_in"] == 4, f"counters: {pp}")
    rl.finish()
    refused = [r for r in access_log(rl.log) if r["end"] == "source_limit"]
    check(len(refused) == 1 and refused[0]["client"].startswith("192.0.2.1:") and
          refused[0]["peer"].startswith("127.0.0.1:"), f"access log: {refused}")


IMPAIRED_CONNS, IMPAIRED_BYTES = 4, 2 << 20


def impaired_path(ctx, impair):
    """IMPAIRED_CONNS connections moving IMPAIRED_BYTES each way through a
    relay whose packets to and from the backend are impaired, all inside a
    network namespace the test makes. impair is one of peers.impair's
    impairments, set up on the backend's port inside the namespace. Every
    connection must complete and every byte arrive, each way. Returns the
    access log's lines and what impair's function said."""
    prefix = Namespace(ctx, "tf").prefix
    common = ["--conns", str(IMPAIRED_CONNS), "--bytes", str(IMPAIRED_BYTES), "--timeout", "90"]
    backend = Helper(ctx, "integrity-backend", ["integrity-backend"] + common, prefix=prefix)
    bport = backend.wait_json("port", 10)["port"]
    measure = impair(prefix, bport)
    port = harness.free_port()
    log = os.path.join(ctx.tmpdir, "access.log")
    rl = harness.start_relay(ctx, ["--listen", f"127.0.0.1:{port}", "--backend",
                                   f"127.0.0.1:{bport}", "--access-log", log,
                                   "--access-log-format", "json"], wrapper=prefix)
    rl.log = log
    cl = Helper(ctx, "integrity-client", ["integrity-client"] + common +
                ["--target", f"127.0.0.1:{port}"], prefix=prefix)
    cres = cl.wait_json("results", 100)["results"]
    bres = backend.wait_json("results", 20)["results"]
    check(len(cres) == IMPAIRED_CONNS and len(bres) == IMPAIRED_CONNS,
          f"{len(cres)} client and {len(bres)} backend results of {IMPAIRED_CONNS}")
    for key, c in cres.items():
        b = bres.get(key)
        check(b is not None and not any(k.endswith("_error") for k in list(c) + list(b)),
              f"connection {key}: client {c}, backend {b}")
        check(c["sent_sha"] == b["recv_sha"] and b["sent_sha"] == c["recv_sha"] and
              c["sent"] == b["recv"] == IMPAIRED_BYTES, f"connection {key}: bytes differ")
    done = measure()
    rl.finish()
    lines = access_log(rl.log)
    check(len(lines) == IMPAIRED_CONNS and all(r["from_client"] == r["from_server"] ==
                                                IMPAIRED_BYTES for r in lines),
          f"access log: {lines}")
    return lines, done


def round_trip_seen(lines, ms):
    """Every connect took at least the round trip (SYN and SYN-ACK each
    held ms): the relay's own timing shows the delay was there."""
    fast = [r["connect_ms"] for r in lines if r["connect_ms"] < 2 * ms]
    check(not fast, f"connects faster than the {2 * ms} ms round trip: {fast} ms")


DELAY_MS = 25


@case("fault_packet_loss_between_relay_and_backend", budget=120)
def lossy(ctx):
    """5 % of the packets to and from the backend dropped: every connection
    completes and every byte arrives, each way."""
    start_t = time.monotonic()
    _, dropped = impaired_path(ctx, loss(5))
    check(dropped > 0, "no packet was dropped: the test tested nothing")
    ctx.note(f"{dropped} packets dropped; {IMPAIRED_CONNS} x {IMPAIRED_BYTES >> 20} MiB each way "
             f"intact in {time.monotonic() - start_t:.1f}s")


@case("fault_delay_between_relay_and_backend", budget=120)
def delayed(ctx):
    """Every packet to and from the backend held 25 ms: every connection
    completes, every byte arrives each way, and the relay's connect times
    show the 50 ms round trip."""
    start_t = time.monotonic()
    lines, held = impaired_path(ctx, delay(ctx, DELAY_MS))
    check(held > 0, "no packet was delayed: the test tested nothing")
    round_trip_seen(lines, DELAY_MS)
    ctx.note(f"{held} packets held {DELAY_MS} ms each; {IMPAIRED_CONNS} x "
             f"{IMPAIRED_BYTES >> 20} MiB each way intact in {time.monotonic() - start_t:.1f}s")


@case("fault_loss_and_delay_between_relay_and_backend", budget=150)
def lossy_and_delayed(ctx):
    """Both at once, as on a bad WAN link: 3 % lost and 25 ms each way, so
    every lost packet costs a retransmission timer, not a loopback instant."""
    start_t = time.monotonic()
    lines, (dropped, held) = impaired_path(ctx, both(loss(3), delay(ctx, DELAY_MS)))
    check(dropped > 0 and held > 0, f"{dropped} dropped, {held} delayed: nothing tested")
    round_trip_seen(lines, DELAY_MS)
    ctx.note(f"{dropped} packets dropped, {held} held {DELAY_MS} ms; all bytes intact in "
             f"{time.monotonic() - start_t:.1f}s")


@case("fault_backend_killed_under_load", budget=90)
def killed(ctx):
    """kill -9 of one of two servers while 20 long connections run: those
    on it end (reset or closed, as the access log says), those on the other
    finish byte for byte, and a client that starts afterwards is served on
    every connection (refused connects are retried on the live server)."""
    e1, e2 = start_echo(ctx, "echo1"), start_echo(ctx, "echo2")
    p1, p2 = e1.port, e2.port
    port = harness.free_port()
    rl = start(ctx, [cfg.listener("web", port)], [p1, p2], backend={"retries": 1})
    baseline = resting(rl)
    st = Helper(ctx, "steady", ["steady-client", "--target", f"127.0.0.1:{port}",
                                "--conns", "20", "--pieces", "30", "--piece", "500",
                                "--gap", "0.1", "--timeout", "30"])
    st.wait_json("connected", 10)
    os.kill(e1.pid, signal.SIGKILL)
    e1.wait(5)
    res = st.wait_json("results", 40)["results"]
    rate = Helper(ctx, "rate", ["rate-client", "--target", f"127.0.0.1:{port}",
                                "--rate", "100"])
    rate.wait_json("started", 10)
    time.sleep(1)  # the rate client runs against one live server for a second
    rate.stop(signal.SIGTERM, 15)
    done = rate.wait_json("done", 15)["done"]
    check(done["failed"] == 0 and done["ok"] == done["opened"] and done["ok"] > 0,
          f"after the kill: {done['ok']} of {done['opened']} ok, {done['errors']}")
    settle(rl, baseline, "the kill")
    app = backend_stats(rl.sock, "app")
    servers = {s["name"]: s for s in app["servers"]}
    dead, live = servers[f"127.0.0.1:{p1}"], servers[f"127.0.0.1:{p2}"]
    check(dead["connect_failures"]["refused"] > 0 and app["retries"] > 0,
          f"refused connects to the dead server were not retried: {app}")
    rl.finish()
    lines = access_log(rl.log)
    on_dead = [r for r in lines if r["server"] == f"127.0.0.1:{p1}"]
    check(res["n_failed"] > 0 and res["n_failed"] <= dead["conns"],
          f"{res['n_failed']} long connections failed, {dead['conns']} were on the dead server")
    check(all(r["end"] in ("backend_reset", "backend_closed", "connect_failed") or
              r["end"] == "client_closed" for r in on_dead), f"ends on the dead server: "
          f"{sorted(set(r['end'] for r in on_dead))}")
    check(live["active"] == 0 and dead["active"] == 0, "connections still counted open")
    ctx.note(f"{res['n_failed']} of 20 long connections were on the killed server; "
             f"{done['ok']} new ones served after it")
