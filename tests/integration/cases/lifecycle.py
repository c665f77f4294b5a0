"""The relay as a long-running process: no descriptor leak over 20,000
connections, --max-connections, signals, and the log line format."""

import os
import re
import signal
import socket

import harness
from harness import check, cpu_seconds
from kit import config as cfg
from kit.stats import listener_stats, stats_json
from peers.helper import Helper, start_echo
from peers.proxy_header import read_header_then, read_proxy_header
from peers.wire import recv_exact

from .base import case, client, listener, relay, roundtrip

CHURN_TOTAL = 20000
CHURN_CONCURRENCY = 200
ALLOWED_WARMUP_GROWTH = 64  # fds a relay may keep after its first connections (pools)


def churn(ctx, port, total, name):
    """total echo round trips through the relay, CHURN_CONCURRENCY at a time."""
    cl = Helper(ctx, name, ["churn-client", "--target", f"127.0.0.1:{port}",
                            "--total", str(total),
                            "--concurrency", str(CHURN_CONCURRENCY)])
    done = cl.wait_json("done", 150)["done"]
    check(done["failed"] == 0 and done["ok"] == total,
          f"{name}: {done['ok']} of {total} round trips ok, errors {done['errors']}")
    return done


def served_or_closed(backend, sock, what, timeout=5):
    """Waits until the backend has a connection to accept ("served") or the
    relay closed sock ("closed")."""
    sock.settimeout(0.05)

    def outcome():
        if backend.pending():
            return "served"
        try:
            return "closed" if sock.recv(1) == b"" else None
        except socket.timeout:
            return None
        except OSError:
            return "closed"
    return harness.wait_until(outcome, timeout, f"{what} to be served or closed")


def settle(pid, target, timeout):
    """Poll the relay's fd count until it is <= target; return the last count."""
    last = [harness.fd_count(pid)]

    def low():
        last[0] = harness.fd_count(pid)
        return last[0] <= target
    try:
        harness.wait_until(low, timeout, "fd count to settle", interval=0.05)
    except harness.TestFailure:
        pass
    return last[0]


@case("fd_leak_20000_connections", budget=200)
def fd_leak(ctx):
    """20,000 short connections (200 at a time) through the relay to an echo
    backend; afterwards the relay's open fds return to what they were."""
    echo = start_echo(ctx, "echo-backend")
    bport = echo.port
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", bport), "--workers", "2")
    at_start = harness.fd_count(rl.pid)
    churn(ctx, port, 400, "warmup")
    baseline = settle(rl.pid, at_start, 5)
    check(baseline - at_start <= ALLOWED_WARMUP_GROWTH,
          f"fds grew from {at_start} to {baseline} after 400 connections")
    done = churn(ctx, port, CHURN_TOTAL, "churn")
    after = settle(rl.pid, baseline, 10)
    check(after <= baseline, f"relay holds {after} fds after {CHURN_TOTAL} connections, "
                             f"{baseline} before")
    rl.check_alive()
    echo.stop(signal.SIGTERM, 5)
    stats = echo.wait_json("stats", 5)["stats"]
    check(stats["bad_headers"] == 0, f"echo backend saw {stats['bad_headers']} bad headers")
    ctx.note(f"{CHURN_TOTAL} conns in {done['elapsed']:.1f}s, fds {at_start}/{baseline}/{after}")


BUDGET_LIMITS = (256, 512, 1024, 1152, 1153, 2048, 4096, 8192, 20000)
BUDGET_WORKERS = (1, 2, 16)
BUDGET_LINE = re.compile(r"open-file limit (\d+): room for (\d+) connections .*= 2 x (\d+) "
                         r"sockets \+ (\d+) held by the process .*\+ (\d+) spare \+ (\d+) "
                         r"workers x 2 x (\d+) splice pipes")


def budget_relay(ctx, limit, workers, *extra):
    """A relay under a hard open-file limit, with a stats socket, in front
    of an echo backend (started once per test); returns it and its port."""
    if not hasattr(ctx, "budget_echo"):
        ctx.budget_echo = start_echo(ctx, "echo-backend")
    name = f"relay-{workers}-{limit}{'-'.join([''] + list(extra))}"
    sock = os.path.join(ctx.tmpdir, f"{name}.sock")
    port = harness.free_port()
    doc = cfg.document([cfg.listener("web", port)],
                       [cfg.backend("app", [ctx.budget_echo.port])],
                       workers=workers, stats_socket=sock)
    rl = harness.start_relay(ctx, ["-c", cfg.write(ctx, doc, f"{name}.yaml"), *extra], name,
                             wrapper=("prlimit", f"--nofile={limit}:{limit}"))
    rl.sock = sock
    return rl, port


def budget_line(rl, limit, expect):
    """The relay's one budget line, checked: its shares add up to the limit
    (less a partial pipe set), and it is a warning exactly when fewer than
    expect connections fit."""
    lines = [ln for ln in rl.stderr().splitlines() if "open-file limit" in ln]
    m = stats_json(rl.sock)["process"]["max_connections"]
    if not lines:
        check(m >= expect, f"limit {limit}: {m} connections and no line saying why")
        return m
    check(len(lines) == 1, f"limit {limit}: {len(lines)} budget lines: {lines}")
    got = BUDGET_LINE.search(lines[0])
    check(got, f"limit {limit}: budget line without its arithmetic: {lines[0]}")
    lim, room, socks, held, spare, workers, pipes = map(int, got.groups())
    used = 2 * socks + held + spare + 2 * workers * pipes
    check(lim == limit and room == socks == m, f"limit {limit}, {m} connections: {lines[0]}")
    check(used <= limit < used + 2 * workers + 2,
          f"limit {limit}: the shares add up to {used}: {lines[0]}")
    check((" warn " in lines[0]) == (m < expect),
          f"limit {limit}, {m} connections, want a warning below {expect}: {lines[0]}")
    return m


def serve_all(ctx, rl, port, n):
    """n connections held open at once and all echoed; one more is reset
    and counted as refused."""
    st = Helper(ctx, f"steady-{n}", ["steady-client", "--target", f"127.0.0.1:{port}",
                                     "--conns", str(n), "--pieces", "10", "--piece", "100",
                                     "--gap", "0.5", "--timeout", "60"])
    st.wait_json("connected", 30)
    harness.wait_until(lambda: listener_stats(rl.sock, "web")["active"] == n, 20,
                       f"{n} connections to be open")
    extra = socket.socket()
    extra.settimeout(5)
    try:
        extra.connect(("127.0.0.1", port))
        how = "closed" if extra.recv(1) == b"" else "answered"
    except ConnectionResetError:  # during connect() or the read
        how = "reset"
    except socket.timeout:
        how = "left waiting"
    finally:
        extra.close()
    check(how in ("reset", "closed"), f"connection {n + 1} was {how}, want refused at once")
    res = st.wait_json("results", 90)["results"]
    check(res["n_failed"] == 0, f"{res['n_failed']} of {n} connections failed: {res['failed']}")
    check(stats_json(rl.sock)["listeners"][0]["refused"] >= 1, "the refusal was not counted")


@case("descriptor_budget_follows_the_limit", budget=300)
def descriptor_budget(ctx):
    """Under hard open-file limits from 256 to 20,000 and 1, 2 and 16
    workers, max_connections fills what the limit leaves (pipes and the
    spare shrink first), grows with the limit, and is said in one line
    whose arithmetic adds up, a warning below 1,000. At the field trial's
    limits every connection counted is served. (Old main: 2 connections
    under 1024 with 2 workers, 16 under 4096 with 16.)"""
    seen = {}
    for workers in BUDGET_WORKERS:
        last = 0
        for limit in BUDGET_LIMITS:
            rl, port = budget_relay(ctx, limit, workers)
            m = budget_line(rl, limit, 1000)
            check(m >= last, f"{workers} workers: {m} connections under {limit}, {last} under "
                             f"a lower limit")
            check(2 * m < limit and m >= min(1000, (limit - 64 - 2 * workers) // 2 - 34),
                  f"{workers} workers, limit {limit}: {m} connections")
            seen[(workers, limit)] = m
            last = m
            if (workers, limit) in ((2, 1024), (16, 1024), (16, 8192)):
                serve_all(ctx, rl, port, m)
            rl.finish()
    rl, port = budget_relay(ctx, 1024, 2, "--max-connections", "400")
    check(budget_line(rl, 1024, 400) == 400, "--max-connections 400 under 1024: not 400")
    serve_all(ctx, rl, port, 400)
    ctx.note(", ".join(f"{w}x{lim}: {m}" for (w, lim), m in seen.items()))


FLOOD = 300


@case("rate_limited_lines_are_summarised")
def rate_limited(ctx):
    """300 clients over max_connections 1 (two workers): at most 5 lines a
    second are logged for them over both workers, and what was held back is
    summarised even though nothing follows, so logged + suppressed is
    exactly 300. (Old main: 10 lines, 5 per worker, and no summary.)"""
    import time
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port),
               "--max-connections", "1", "--workers", "2")
    held = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    held.sendall(b"x")
    read_proxy_header(be.accept(timeout=5))
    start = time.monotonic()
    for _ in range(FLOOD):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            s.recv(1)
        except OSError:
            pass
        finally:
            s.close()
    seconds = time.monotonic() - start
    summary = re.compile(r"\((\d+) more like \"worker \d+: --max-connections 1 reached")

    def counted():
        text = rl.stderr()
        logged = sum(1 for ln in text.splitlines()
                     if "--max-connections 1 reached" in ln and "more like" not in ln)
        return logged, sum(int(n) for n in summary.findall(text))
    harness.wait_until(lambda: sum(counted()) >= FLOOD, 5,
                       "the held-back lines to be summarised")
    logged, held_back = counted()
    check(logged + held_back == FLOOD, f"{logged} logged + {held_back} suppressed != {FLOOD}")
    check(logged <= 5 * (int(seconds) + 2), f"{logged} lines in {seconds:.1f}s: not limited")
    ctx.note(f"{logged} logged, {held_back} summarised, in {seconds:.1f}s")
    held.close()


MAX_CONNECTIONS = 64


@case("max_connections")
def max_connections(ctx):
    """--max-connections 64, a limit over all workers (two here): 64
    connections are all served, a 65th is reset at once and never reaches
    the backend, and once one closes new clients are served again."""
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port),
               "--max-connections", str(MAX_CONNECTIONS), "--workers", "2")
    held = []
    for i in range(MAX_CONNECTIONS):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
        c.sendall(b"x")
        try:
            b = be.accept(timeout=5)
        except TimeoutError:
            raise harness.TestFailure(f"connection {i + 1} of {MAX_CONNECTIONS} was not served "
                                      f"with only {i} open") from None
        read_proxy_header(b)
        held.append((c, b))
    try:
        extra = client(ctx, ("127.0.0.1", port), "127.0.0.3")
        extra.settimeout(5)
        how = "closed" if extra.recv(1) == b"" else "answered"
        extra.close()
    except ConnectionResetError:  # during connect() or the read
        how = "reset"
    except socket.timeout:
        how = "left waiting"
    check(how == "reset", f"connection {MAX_CONNECTIONS + 1} was {how}, want reset at once")
    check(not be.pending(), f"connection {MAX_CONNECTIONS + 1} reached the backend")
    full = harness.fd_count(rl.pid)
    for sock in held.pop():
        sock.close()
    settle(rl.pid, full - 2, 5)
    roundtrip(ctx, ("127.0.0.1", port), be, "127.0.0.4")
    for c, b in held:
        c.close()
        b.close()


@case("sigterm_exits_0")
def sigterm(ctx):
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port))
    roundtrip(ctx, ("127.0.0.1", port), be)
    took = rl.finish(signal.SIGTERM, timeout=5)
    ctx.note(f"exited in {took:.2f}s")


@case("sigint_with_open_connection_exits_0")
def sigint(ctx):
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port))
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    c.sendall(b"open")
    b = be.accept(timeout=5)
    read_proxy_header(b)
    took = rl.finish(signal.SIGINT, timeout=5)
    ctx.note(f"exited in {took:.2f}s")


@case("io_auto_falls_back_to_epoll", per_io=False)
def io_auto_fallback(ctx):
    """With io_uring_setup blocked (as by a container's seccomp profile),
    --io auto still starts and relays, on epoll."""
    tool = harness.no_uring_tool(ctx)
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port), "--io", "auto",
               wrapper=[tool])
    roundtrip(ctx, ("127.0.0.1", port), be)
    ready = next(line for line in rl.stderr().splitlines() if "ready:" in line)
    if "io=" in ready:
        check("io=epoll" in ready, f"ready line names another back end: {ready!r}")
    ctx.note(next((w for w in ready.split() if w.startswith("io=")), "ready").rstrip(","))


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)? "
                      r"(error|warn|info|debug) \S")


@case("log_line_format")
def log_line_format(ctx):
    """Every stderr line is `<ISO-8601 time> <level> <message>`, and
    --log-level debug still prints `ready:`."""
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port), "--log-level", "debug")
    roundtrip(ctx, ("127.0.0.1", port), be)
    dead = client(ctx, ("127.0.0.1", port))
    dead.close()
    rl.finish()
    lines = rl.stderr().splitlines()
    check(lines, "relay logged nothing")
    bad = [line for line in lines if not LOG_LINE.match(line)]
    check(not bad, f"{len(bad)} of {len(lines)} log lines malformed, e.g. {bad[:1]!r}")
    ctx.note(f"{len(lines)} lines")


@case("accept_backs_off_on_emfile")
def accept_emfile(ctx):
    """With its open-file limit lowered to what it already holds, the relay
    cannot accept: it logs the error, backs off instead of spinning, keeps
    serving the connection it has, and serves the waiting client once the
    limit is raised again."""
    import resource
    import time
    be = listener(ctx)
    port = harness.free_port()
    rl = relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port), "--workers", "1")
    c1 = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    c1.sendall(b"one")
    b1 = be.accept(timeout=5)
    read_header_then(b1, b"one")
    soft, hard = resource.prlimit(rl.pid, resource.RLIMIT_NOFILE)
    # The limit bounds fd numbers: below the lowest free one, accept fails.
    used = {int(n) for n in os.listdir(f"/proc/{rl.pid}/fd")}
    lowest_free = next(n for n in range(len(used) + 1) if n not in used)
    resource.prlimit(rl.pid, resource.RLIMIT_NOFILE, (lowest_free, hard))
    c2 = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    c2.sendall(b"two")
    harness.wait_until(lambda: "Too many open files" in rl.stderr(), 5,
                       "the relay to log the failed accept")
    cpu0, t0 = cpu_seconds(rl.pid), time.monotonic()
    b1.sendall(b"still here")
    got = recv_exact(c1, 10)
    check(got == b"still here", f"open connection while paused: client got {got!r}")
    c1.sendall(b"and back")
    got = recv_exact(b1, 8)
    check(got == b"and back", f"open connection while paused: backend got {got!r}")
    time.sleep(1.0)  # a window to measure CPU use in, not synchronisation
    used = cpu_seconds(rl.pid) - cpu0
    wall = time.monotonic() - t0
    check(used < 0.5 * wall, f"relay used {used:.2f}s of CPU in {wall:.2f}s while it "
                             f"could not accept: spinning")
    check(not be.pending(), "a connection was served while accept could not work")
    resource.prlimit(rl.pid, resource.RLIMIT_NOFILE, (soft, hard))
    # With epoll the waiting client is still in the backlog. io_uring's
    # accept, armed under the old limit (the kernel reads it when the accept
    # is queued), may have taken it: then it waits for a descriptor for its
    # backend. Either way it is served now.
    how = served_or_closed(be, c2, "the waiting client")
    check(how == "served", "the waiting client was closed, not served")
    info = read_header_then(be.accept(timeout=1), b"two")
    check(info.get("src") and info["src"][0] == "127.0.0.3",
          f"waiting client served with header {info}")
    roundtrip(ctx, ("127.0.0.1", port), be, "127.0.0.4")
    ctx.note(f"{used:.2f}s CPU in {wall:.2f}s while paused; waiting client served")
