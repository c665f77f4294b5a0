"""The relay as a long-running process: no descriptor leak over 20,000
connections, --max-connections, signals, and the log line format."""

import re
import signal
import socket

import harness
from harness import check, cpu_seconds
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
    import os
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
