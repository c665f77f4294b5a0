"""The relay as a long-running process: no descriptor leak over 20,000
connections, --max-connections, signals, and the log line format."""

import re
import signal
import socket
import time

import harness
import peers
from harness import check

from .base import case, client, listener, relay, roundtrip

CHURN_TOTAL = 20000
CHURN_CONCURRENCY = 200
ALLOWED_WARMUP_GROWTH = 64  # fds a relay may keep after its first connections (pools)


def churn(ctx, port, total, name):
    """total echo round trips through the relay, CHURN_CONCURRENCY at a time."""
    cl = harness.Helper(ctx, name, ["churn-client", "--target", f"127.0.0.1:{port}",
                                    "--total", str(total),
                                    "--concurrency", str(CHURN_CONCURRENCY)])
    done = cl.wait_json("done", 150)["done"]
    check(done["failed"] == 0 and done["ok"] == total,
          f"{name}: {done['ok']} of {total} round trips ok, errors {done['errors']}")
    return done


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
    echo = harness.Helper(ctx, "echo-backend", ["echo-backend"])
    bport = echo.wait_json("port", 10)["port"]
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


@case("max_connections")
def max_connections(ctx):
    """--max-connections 4, a limit over all workers (two here): with 4
    connections open a 5th never reaches the backend; once one closes, new
    clients are served again."""
    be = listener(ctx)
    port = harness.free_port()
    relay(ctx, [("127.0.0.1", port)], ("127.0.0.1", be.port),
          "--max-connections", "4", "--workers", "2")
    held = []
    for i in range(4):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
        c.sendall(b"%d" % i)
        b = be.accept(timeout=5)
        peers.read_proxy_header(b)
        held.append((c, b))
    fifth = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    try:
        fifth.sendall(b"5")
    except OSError:
        pass
    try:
        be.accept(timeout=1.0)  # a bounded look for something that must not happen
        raise harness.TestFailure("a 5th connection reached the backend with 4 open")
    except TimeoutError:
        pass
    c0, b0 = held.pop(0)
    c0.close()
    b0.close()
    # The 5th was either refused (closed) or queued; if queued it is served now.
    fifth.settimeout(0.05)

    def outcome():
        if be.pending():
            return "served"
        try:
            return "closed" if fifth.recv(1) == b"" else None
        except socket.timeout:
            return None
        except OSError:
            return "closed"
    how = harness.wait_until(outcome, 5, "the 5th connection to be served or closed")
    if how == "served":
        b5 = be.accept(timeout=1)
        fifth.close()
        b5.close()
    roundtrip(ctx, ("127.0.0.1", port), be, "127.0.0.4")
    ctx.note(f"5th connection was {how} after a slot freed")


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
    peers.read_proxy_header(b)
    took = rl.finish(signal.SIGINT, timeout=5)
    ctx.note(f"exited in {took:.2f}s")


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
