"""Reload on SIGHUP without dropping anything: 2,000 connections keep
transferring across 20 reloads that add and remove servers and listeners;
not one fails and not one byte differs. A bad file changes nothing."""

import os
import signal
import socket
import threading
import time

import harness
from harness import check
from kit import config as cfg
from kit.stats import stats_json
from peers.helper import Helper, start_echo
from peers.wire import recv_to_eof

from .base import case, listener, served_by

RELOADS = 20
CONNS = 2000


def config(ports, servers):
    """Two workers, a listener l<port> for each port, one backend b on servers."""
    return cfg.document([cfg.listener(f"l{p}", p) for p in ports], [cfg.backend("b", servers)],
                        workers=2)


def reload_to(ctx, rl, doc, n):
    """Rewrites the relay's file with doc, sends SIGHUP, waits for reload n."""
    cfg.write(ctx, doc)
    os.kill(rl.pid, signal.SIGHUP)
    harness.wait_until(lambda: rl.stderr().count(" applied: ") >= n, 10,
                       f"reload {n} to be applied")


@case("reload_keeps_2000_connections_across_20_reloads", per_io=True, budget=180)
def reload_many(ctx):
    eport, eport2 = start_echo(ctx, "echo").port, start_echo(ctx, "echo2").port
    base, extra = harness.free_port(), harness.free_port()
    path = cfg.write(ctx, config([base], [eport]))
    rl = harness.start_relay(ctx, ["-c", path])
    cl = Helper(ctx, "steady", ["steady-client", "--target", f"127.0.0.1:{base}",
                                "--conns", str(CONNS), "--pieces", "60",
                                "--gap", "0.1", "--timeout", "120"])
    cl.wait_json("connected", 60)
    for n in range(1, RELOADS + 1):
        grow = n % 2 == 1
        reload_to(ctx, rl, config([base, extra] if grow else [base],
                                  [eport, eport2] if grow else [eport2]), n)
        check(cl.alive(), "the client died")
    check(not any("results" in o for o in cl.json_lines()),
          "the transfers ended before the last reload: the test proves nothing")
    res = cl.wait_json("results", 150)["results"]
    check(res["n_failed"] == 0, f"{res['n_failed']} of {CONNS} connections failed across "
                                f"{RELOADS} reloads: {res['failed']}")
    check(rl.stderr().count(" applied: ") == RELOADS and "reload: " not in
          rl.stderr().replace("applied: ", "").replace("reload: " + path, ""),
          f"a reload was refused or only partly applied: {harness.tail(rl.stderr())}")
    ctx.note(f"{CONNS} connections, {RELOADS} reloads, 0 failed, every byte echoed back")


@case("reload_adds_and_removes_listeners_and_refuses_bad_files")
def reload_listeners(ctx):
    be = listener(ctx)
    p1, p2 = harness.free_port(), harness.free_port()
    path = cfg.write(ctx, config([p1], [be.port]))
    rl = harness.start_relay(ctx, ["-c", path])
    check(served_by([be], "127.0.0.2", b"a", p1) == 0, "not served before the reload")
    reload_to(ctx, rl, config([p1, p2], [be.port]), 1)
    check(served_by([be], "127.0.0.2", b"b", p2) == 0, "the added listener does not serve")
    reload_to(ctx, rl, config([p2], [be.port]), 2)
    check(harness.wait_until(lambda: not harness.is_listening(p1), 5, "p1 to close"),
          "the removed listener still listens")
    check(served_by([be], "127.0.0.2", b"c", p2) == 0, "the kept listener stopped serving")
    with open(path, "w") as f:
        f.write("listeners: [\n")  # broken on purpose: no emitter would write it
    os.kill(rl.pid, signal.SIGHUP)
    harness.wait_until(lambda: "keeping the running configuration" in rl.stderr(), 5,
                       "the bad file to be refused")
    check(served_by([be], "127.0.0.2", b"d", p2) == 0, "a bad file broke the running relay")


@case("reload_while_stats_are_read", per_io=False, budget=90)
def reload_read(ctx):
    """Reloads that shrink and grow a pool (3 servers, 1, 3, ...) while
    three clients read show stats json without a pause: every answer is
    whole JSON whose servers are the running configuration's, and the relay
    lives (the stats thread once read the new pool with the old slots)."""
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    ports = [harness.free_port() for _ in range(3)]

    def doc(n):
        return cfg.document([cfg.listener("l", port)], [cfg.backend("b", ports[:n])],
                            stats_socket=sock)

    port = harness.free_port()
    path = cfg.write(ctx, doc(3))
    rl = harness.start_relay(ctx, ["-c", path])
    stop, bad, answers = threading.Event(), [], [0]

    def read():
        while not stop.is_set():
            try:
                servers = [s["state"] for s in stats_json(sock)["backends"][0]["servers"]]
                answers[0] += 1
                live = [s for s in servers if s != "gone"]
                if len(servers) != 3 or len(live) not in (1, 3) or set(live) != {"up"}:
                    bad.append(servers)
            except (OSError, ValueError) as e:
                bad.append(repr(e))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(1, 31):
            reload_to(ctx, rl, doc(1 if i % 2 else 3), i)
    finally:
        stop.set()
        for t in readers:
            t.join()
    check(not bad, f"{len(bad)} bad answers, the first: {bad[:1]}")
    check(rl.alive() and answers[0] > 30, f"alive {rl.alive()}, {answers[0]} answers")


@case("reload_storm_lands_the_last_file", budget=90)
def reload_storm(ctx):
    """20 SIGHUPs 0.1 s apart while long transfers run and a new connection
    opens on each configuration in turn (pinning it): none is refused or
    lost (before: the 5th reload was refused for good once four
    configurations held connections), SIGHUPs that come while one is
    being taken are queued (latest wins: the file is read when it runs),
    and the last file is in force: its new listener serves, and the server
    it removed gets no new connection. No transfer breaks."""
    e1, e2 = start_echo(ctx, "echo1"), start_echo(ctx, "echo2")
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    base, last = harness.free_port(), harness.free_port()

    def doc(final):
        ports = [base, last] if final else [base]
        return cfg.document([cfg.listener(f"l{p}", p, default_backend="b") for p in ports],
                            [cfg.backend("b", [e2.port] if final else [e1.port, e2.port])],
                            workers=2, stats_socket=sock)

    path = cfg.write(ctx, doc(False))
    rl = harness.start_relay(ctx, ["-c", path])
    cl = Helper(ctx, "steady", ["steady-client", "--target", f"127.0.0.1:{base}",
                                "--conns", "20", "--pieces", "60", "--gap", "0.1",
                                "--timeout", "60"])
    cl.wait_json("connected", 30)
    held = []
    for n in range(1, 21):
        s = socket.create_connection(("127.0.0.1", base), timeout=5)
        ctx.on_cleanup(s.close)
        held.append(s)
        cfg.write(ctx, doc(n == 20))
        os.kill(rl.pid, signal.SIGHUP)
        time.sleep(0.1)  # the storm's pace, not a wait for anything
    sent = time.monotonic()
    check(cl.alive() and not any("results" in o for o in cl.json_lines()),
          "the transfers ended before the last SIGHUP: the test proves nothing")

    def landed():
        proc = stats_json(sock)["process"]
        return (not proc["reload_pending"] and proc["generation_applied"] == proc["generation"]
                and harness.is_listening(last))
    harness.wait_until(landed, 10, "the last file to be in force")
    took = time.monotonic() - sent
    before = {s["name"]: s["conns"] for s in stats_json(sock)["backends"][0]["servers"]}
    for _ in range(10):
        c = socket.create_connection(("127.0.0.1", last), timeout=5)
        c.sendall(b"x")
        c.shutdown(socket.SHUT_WR)
        check(recv_to_eof(c) == b"x", "the last file's listener does not serve")
        c.close()
    after = {s["name"]: s["conns"] for s in stats_json(sock)["backends"][0]["servers"]}
    key2 = f"127.0.0.1:{e2.port}"
    check(after.get(key2, 0) - before.get(key2, 0) == 10 and
          all(after[k] == before.get(k, 0) for k in after if k != key2),
          f"the removed server took new connections: {before} -> {after}")
    res = cl.wait_json("results", 60)["results"]
    check(res["n_failed"] == 0, f"{res['n_failed']} transfers failed: {res['failed']}")
    err = rl.stderr()
    check("refused" not in err and "try again" not in err, f"{harness.tail(err)}")
    proc = stats_json(sock)["process"]
    ctx.note(f"{proc['reloads']} reloads applied for 20 SIGHUPs (the rest queued behind them), "
             f"the last in force {took * 1000:.0f} ms after the last SIGHUP; 20 transfers intact")
