"""Servers given by DNS name, against a real DNS server (dnsmasq, on
loopback, its records in a hosts file it reads again on SIGHUP): the relay
resolves at start, follows records that appear and disappear while
traffic flows (a connection to a removed address goes on), keeps its
servers through a stalled resolver and a failing one, starts a name that
never resolves as a down server, and counts it all."""

import os
import re
import signal
import socket
import time

import harness
from harness import Proc, check
from kit import config as cfg
from kit.stats import backend_stats, query, stats_json
from peers.daemons import require
from peers.helper import Helper, start_echo

from .base import case


class Dnsmasq(Proc):
    """dnsmasq answering only from a hosts file for *.internal on
    127.0.0.1:port, as root, in the foreground; extra: more options (an
    upstream for a zone, say)."""

    def __init__(self, ctx, port, records, name="dnsmasq", extra=()):
        require("dnsmasq")
        self.hosts = os.path.join(ctx.tmpdir, f"{name}.hosts")
        self.port = port
        self.set(records, reread=False)
        super().__init__(name, ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                                "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts}",
                                "--listen-address=127.0.0.1", "--bind-interfaces",
                                f"--port={port}", "--user=root", "--pid-file=",
                                "--log-facility=-", "--log-queries", *extra], ctx.tmpdir)
        ctx.on_cleanup(self.shutdown)
        harness.wait_until(lambda: harness.is_listening(port) or not self.alive(), 10,
                           f"{name} to listen")
        check(self.alive(), f"{name} exited: {harness.tail(self.stderr())}")

    def set(self, records, reread=True):
        """records: {name: [addresses]}; dnsmasq reads them again (SIGHUP)."""
        with open(self.hosts, "w") as f:
            for host, addrs in records.items():
                for a in addrs:
                    f.write(f"{a} {host}\n")
        if reread:
            os.kill(self.pid, signal.SIGHUP)

    def shutdown(self):
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)
        if self.stop(signal.SIGTERM, 10) is None:
            self.kill()


def servers(sock):
    """The kong backend's servers as {key: state}, without those gone."""
    return {s["name"]: s["state"] for s in backend_stats(sock, "kong")["servers"]
            if s["state"] != "gone"}


def dns_entry(sock, host):
    return next(d for d in stats_json(sock)["dns"] if d["name"] == host)


def round_trip_ms(port, payload=b"ping\n"):
    """A new connection through the relay, one echo; milliseconds."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(64)
            check(chunk, "the relay closed a round trip")
            got += chunk
    return (time.monotonic() - start) * 1000


@case("dns_servers_follow_their_names_with_dnsmasq", per_io=False, budget=150)
def dns_follow(ctx):
    """kong.internal (1 s interval, asked of dnsmasq by the backend's own
    resolvers: the top level's is dead) goes from an A record to an A and
    an AAAA, then the AAAA alone, while a client opens 40 connections a
    second (none may fail) and one connection stays open on the address
    that goes away;
    a 5 s SIGSTOP of dnsmasq and then a dnsmasq that answers SERVFAIL keep
    the servers; ghost.internal never resolves and is a down server."""
    a = start_echo(ctx, "echo-a", host="127.0.0.2")
    b = start_echo(ctx, "echo-b", host="::1", port=a.port)
    dns_port, dead_port = harness.free_port(), harness.free_port()
    ns = Dnsmasq(ctx, dns_port, {"kong.internal": ["127.0.0.2"]})
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    port = harness.free_port()
    key_a, key_b = f"127.0.0.2:{a.port}", f"[::1]:{b.port}"
    rl = cfg.start(ctx, cfg.document(
        stats_socket=sock, resolvers=[f"127.0.0.1:{dead_port}"], resolve_interval="1s",
        listeners=[cfg.listener("web", port)],
        backends=[cfg.backend("kong", [cfg.server(f"kong.internal:{a.port}"),
                                       cfg.server(f"ghost.internal:{a.port}")],
                              resolvers=[f"127.0.0.1:{dns_port}"])]))
    check(servers(sock) == {key_a: "up", f"ghost.internal:{a.port}": "down"},
          f"at start: {servers(sock)}")
    check(re.search(r"ghost\.internal does not resolve \(.*\): its server stays down", rl.stderr()),
          "the name that does not resolve is not named in the log")
    check(query(sock, "show ready") == "ready\n", "not ready with kong.internal resolved")

    load = Helper(ctx, "load", ["rate-client", "--target", f"127.0.0.1:{port}", "--rate", "40"])
    load.wait_json("started", 10)
    held = socket.create_connection(("127.0.0.1", port), timeout=5)
    ctx.on_cleanup(held.close)
    held.sendall(b"held 1\n")
    check(held.recv(64) == b"held 1\n", "no echo on the held connection")
    check(backend_stats(sock, "kong")["servers"][0]["active"] >= 1, "the held one is not on a")

    ns.set({"kong.internal": ["127.0.0.2", "::1"]})
    harness.wait_until(lambda: servers(sock).get(key_b) == "up", 10, "::1 (AAAA) to be added")
    check("kong.internal: 2 addresses (was 1): +[::1]" in rl.stderr(), "no log of the change")
    harness.wait_until(lambda: any(s["name"] == key_b and s["conns"] > 0
                                   for s in backend_stats(sock, "kong")["servers"]), 10,
                       "the new server to take connections")
    ns.set({"kong.internal": ["::1"]})
    harness.wait_until(lambda: key_a not in servers(sock), 10, "127.0.0.2 to be removed")
    held.sendall(b"held 2\n")
    check(held.recv(64) == b"held 2\n", "the connection to the removed address stopped")

    calm = []
    for _ in range(100):
        calm.append(round_trip_ms(port))
        time.sleep(0.02)
    os.kill(ns.pid, signal.SIGSTOP)  # the resolver stalls: queries time out
    stalled, took = time.monotonic(), []
    while time.monotonic() - stalled < 5:
        took.append(round_trip_ms(port))
        time.sleep(0.02)
    stall = sorted(took)
    harness.wait_until(lambda: "kong.internal does not resolve" in rl.stderr(), 10,
                       "the stalled resolver to be noticed")
    check(servers(sock) == {key_b: "up", f"ghost.internal:{a.port}": "down"},
          f"during the stall: {servers(sock)}")
    os.kill(ns.pid, signal.SIGCONT)
    harness.wait_until(lambda: "kong.internal resolves again: 1 address, as before"
                       in rl.stderr(), 10, "the resolver to answer again")

    ns.shutdown()  # a dnsmasq whose upstream for .internal is dead: SERVFAIL
    Dnsmasq(ctx, dns_port, {}, name="dnsmasq-servfail",
            extra=[f"--server=/internal/127.0.0.1#{dead_port}"])
    harness.wait_until(lambda: dns_entry(sock, "kong.internal")["state"] == "failing", 15,
                       "kong.internal to fail on the second resolver")
    check(servers(sock) == {key_b: "up", f"ghost.internal:{a.port}": "down"},
          f"while it fails: {servers(sock)}")
    took.append(round_trip_ms(port))

    os.kill(load.popen.pid, signal.SIGTERM)
    done = load.wait_json("done", 15)["done"]
    check(done["failed"] == 0 and done["ok"] > 100, f"the load lost connections: {done}")
    d = dns_entry(sock, "kong.internal")
    check(d["changes"] == 2 and d["failures"] >= 2 and d["addresses"] == 1 and d["error"],
          f"kong.internal counted {d}")
    metrics = query(sock, "show metrics")
    check('ringrelay_dns_changes_total{backend="kong",name="kong.internal"} 2' in metrics,
          "the DNS counters are not in the metrics")
    calm.sort()
    ctx.note(f"round trips: {len(calm)} before the stall median {calm[len(calm) // 2]:.2f} ms "
             f"p99 {calm[98]:.2f} max {calm[-1]:.2f}; {len(stall)} during it median "
             f"{stall[len(stall) // 2]:.2f} ms p99 {stall[len(stall) * 99 // 100]:.2f} "
             f"max {stall[-1]:.2f}")


@case("dns_bad_names_and_resolvers_are_refused", per_io=False)
def dns_bad_config(ctx):
    """-t names what is wrong with a server's name or a resolver, in one line."""
    from .cli import run_cli
    bad = {
        "  - {address: \"kong..internal:8443\"}": "expected IPV4:PORT, [IPV6]:PORT, NAME:PORT",
        "  - {address: \"kong.internal:0\"}": "expected IPV4:PORT, [IPV6]:PORT, NAME:PORT",
        "  - {address: \"10.0.0:8443\"}": "expected IPV4:PORT, [IPV6]:PORT, NAME:PORT",
    }
    head = ("listeners:\n  - name: l\n    bind: 127.0.0.1:1\nbackends:\n  - name: b\n"
            "    servers:\n")
    for line, want in bad.items():
        path = os.path.join(ctx.tmpdir, "bad.yaml")
        with open(path, "w") as f:
            f.write(head + "    " + line.strip() + "\n")
        rc, out, err = run_cli(ctx, ["-t", "-c", path])
        check(rc == 2 and want in err and err.count("\n") == 1, f"{line}: {rc} {err!r}")
    path = os.path.join(ctx.tmpdir, "bad.yaml")
    with open(path, "w") as f:
        f.write("resolvers: [\"127.0.0.1\"]\n" + head + "    - {address: \"k.internal:1\"}\n")
    rc, _, err = run_cli(ctx, ["-t", "-c", path])
    check(rc == 2 and "resolvers: expected IPV4:PORT or [IPV6]:PORT" in err, f"resolvers: {err!r}")
    with open(path, "w") as f:
        f.write(head + "    - {address: \"k.internal:1\"}\n    resolve_interval: 500ms\n")
    rc, _, err = run_cli(ctx, ["-t", "-c", path])
    check(rc == 2 and "resolve_interval: at least 1s" in err, f"resolve_interval: {err!r}")


@case("dns_large_answers_keep_a_stable_set", per_io=False, budget=90)
def dns_large(ctx):
    """big.internal has 1,200 A records, which dnsmasq answers in a new
    order each time: the relay keeps the lowest 1,024 (sorted), warns once,
    and a reordered answer is the same servers: no change, no new
    configuration (before: 64 kept in answer order, and the configuration
    rebuilt about every second)."""
    echo = start_echo(ctx)
    addrs = [f"127.1.{i // 256}.{i % 256}" for i in range(1200)]
    dns_port = harness.free_port()
    Dnsmasq(ctx, dns_port, {"big.internal": addrs})
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    rl = cfg.start(ctx, cfg.document(
        stats_socket=sock, resolve_interval="1s",
        listeners=[cfg.listener("web", harness.free_port())],
        backends=[cfg.backend("kong", [cfg.server(f"big.internal:{echo.port}")],
                              resolvers=[f"127.0.0.1:{dns_port}"], health_check={"mode": "off"})]))
    kept = sorted(servers(sock))
    want = sorted(f"{a}:{echo.port}" for a in addrs[:1024])
    check(kept == want, f"kept {len(kept)} servers, not the lowest 1024: {kept[:3]}...")
    start = dns_entry(sock, "big.internal")["resolutions"]
    harness.wait_until(lambda: dns_entry(sock, "big.internal")["resolutions"] >= start + 4, 20,
                       "four more answers")
    entry = dns_entry(sock, "big.internal")
    proc = stats_json(sock)["process"]
    check(entry["changes"] == 0 and proc["generation"] == 1,
          f"a reordered answer changed the servers: {entry}, generation {proc['generation']}")
    warned = rl.stderr().count("big.internal has 1200 addresses: keeping the lowest 1024")
    check(warned == 1, f"warned {warned} times about the limit")
    check(sorted(servers(sock)) == want, "the set moved")
    ctx.note(f"{entry['resolutions']} answers of 1200 records in rotating order: "
             "1024 kept, 0 changes, generation 1, one warning")


@case("dns_drained_name_drains_the_addresses_it_gains", per_io=False, budget=60)
def dns_drained_name(ctx):
    """set server kong/kong.internal state drain drains the name's
    addresses, and one it gains later starts drained too (before: ready,
    taking new connections); set ready again, all are ready, and one
    gained after that starts ready."""
    a = start_echo(ctx, "echo-a", host="127.0.0.2")
    dns_port = harness.free_port()
    ns = Dnsmasq(ctx, dns_port, {"kong.internal": ["127.0.0.2"]})
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    cfg.start(ctx, cfg.document(
        stats_socket=sock, stats_socket_level="admin", resolve_interval="1s",
        listeners=[cfg.listener("web", harness.free_port())],
        backends=[cfg.backend("kong", [cfg.server(f"kong.internal:{a.port}")],
                              resolvers=[f"127.0.0.1:{dns_port}"])]))

    def admin_states():
        return {s["name"]: s["admin"] for s in backend_stats(sock, "kong")["servers"]
                if s["state"] != "gone"}
    out = query(sock, "set server kong/kong.internal state drain")
    check(out.startswith(f"ok: kong/127.0.0.2:{a.port} state drain"), out)
    ns.set({"kong.internal": ["127.0.0.2", "127.0.0.3"]})
    harness.wait_until(lambda: len(admin_states()) == 2, 10, "the second address")
    check(admin_states() == {f"127.0.0.2:{a.port}": "drain", f"127.0.0.3:{a.port}": "drain"},
          f"the new address of a drained name: {admin_states()}")
    check(query(sock, "set server kong/kong.internal state ready").count("ok: ") == 2, "ready")
    ns.set({"kong.internal": ["127.0.0.2", "127.0.0.3", "127.0.0.4"]})
    harness.wait_until(lambda: len(admin_states()) == 3, 10, "the third address")
    check(set(admin_states().values()) == {"ready"}, f"after ready: {admin_states()}")
