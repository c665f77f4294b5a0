"""A fleet of relays behind the engines operators run (peers/fleet.py,
the files of deploy/): the connection-tracking tier (nftables DNAT by
hash over the ready relays), the BGP tier (BIRD on the router and on every
relay host, ECMP, a resilient next-hop group), and Prometheus scraping
every relay's admin listener. What is asserted: connections spread over
every relay, the gateways see each client's true address, client_ip_hash
keeps a client on one gateway whichever relay it entered, a relay joins
only once ready; on the connection-tracking tier a relay leaves without
losing a byte and one that crashes or loses its host costs the others
nothing; on the BGP tier, what a leave or a crash breaks is measured and
reported. The last case checks that nothing was left behind."""

import collections
import os
import signal
import subprocess
import time

import harness
from harness import check
from peers.fleet import SOURCES, Fleet, gateway_lines, relay_addr, relay_addr6

from .base import case

SPREAD_CONNS = 600


def conns(helper):
    """The {"conn": ...} records a rate client has printed so far."""
    return [o["conn"] for o in helper.json_lines() if "conn" in o]


def conntrack_fleet(ctx, members=(1, 2, 3), prometheus=False):
    """Relays 1-3 behind the balancer, whose members script also watches
    the relays in members; returns once 1-3 are members."""
    fleet = Fleet(ctx)
    for i in (1, 2, 3):
        fleet.start_relay(i)
    fleet.start_balancer(list(members))
    fleet.wait_members([1, 2, 3])
    if prometheus:
        fleet.start_prometheus([1, 2, 3])
    return fleet


def bgp_fleet(ctx, resilient=False, **settings):
    """Relays 1-3 announced to the router; returns once it routes to all."""
    fleet = Fleet(ctx)
    fleet.start_router(resilient)
    for i in (1, 2, 3):
        fleet.start_bgp_relay(i, **settings)
    fleet.wait_next_hops([1, 2, 3])
    return fleet


@case("fleet_conntrack_spread_truth_and_metrics", per_io=False, budget=180, sanitized=False)
def spread(ctx):
    """Three relays behind the balancer: 600 requests from 16 source
    addresses reach every relay (none under 20 %), every gateway response
    names the client's own address and port, each client address always
    lands on the same gateway server whichever relay carried it, and
    Prometheus's sum of accepted connections over the fleet is 600."""
    fleet = conntrack_fleet(ctx, prometheus=True)
    c = fleet.client("burst", ["--mode", "burst", "--count", str(SPREAD_CONNS)])
    results = c.wait_json("results", 120)["results"]
    by_relay = check_spread(ctx, results, (1, 2, 3))
    ctx.note("per relay: " + ", ".join(f"{k} {v}" for k, v in sorted(by_relay.items())))
    check_gateway_log(fleet, results)

    def fleet_total():
        got = fleet.promql('sum(ringrelay_listener_accepted_connections_total{listener="public"})')
        return got and float(got[0]["value"][1]) == SPREAD_CONNS
    harness.wait_until(fleet_total, 15, f"Prometheus's fleet sum to reach {SPREAD_CONNS}")
    up = fleet.promql("sum(ringrelay_ready)")
    check(up and float(up[0]["value"][1]) == 3, f"ringrelay_ready over the fleet: {up}")


def rate_client(fleet, name="rate", rate=50):
    c = fleet.client(name, ["--mode", "rate", "--rate", str(rate), "--duration", "90",
                            "--timeout", "10"])
    c.wait_json("started", 10)
    return c


def stop_rate(c):
    c.stop(signal.SIGTERM, 30)
    return c.wait_json("done", 30)["done"]


@case("fleet_conntrack_join_only_when_ready", per_io=False, budget=180, sanitized=False)
def join(ctx):
    """A 4th relay that runs and listens but is not ready (its gateways
    are wrong: no server up) gets no connection under 50 new connections a
    second; once a reload points it right and /ready turns 200, new
    connections reach it within 2 s. No connection fails meanwhile."""
    fleet = conntrack_fleet(ctx, members=(1, 2, 3, 4))
    rate = rate_client(fleet)
    path = fleet.relay_config(4, gateway_port=1)
    r4 = harness.start_relay(ctx, ["-c", path], name="relay4", wrapper=fleet.prefix("r4"))
    harness.wait_until(lambda: "no server up" in fleet.run(
        "lb", ["curl", "-s", "--max-time", "1", f"http://{relay_addr(4)}:9100/ready"],
        check=False).stdout, 10, "relay 4 to say its backend has no server up")
    seen_before = len(conns(rate))
    harness.wait_until(lambda: len(conns(rate)) >= seen_before + 100, 20,
                       "100 more connections while relay 4 is not ready")
    check(fleet.members_now() == [relay_addr(i) for i in (1, 2, 3)],
          f"relay 4 became a member while not ready: {fleet.member_lines()}")
    fleet.relay_config(4)  # the same file, the gateways' right port
    last_503 = reloaded = time.time()
    r4.popen.send_signal(signal.SIGHUP)
    while fleet.ready(4) != 200:
        last_503 = time.time()
        check(last_503 - reloaded < 10, "relay 4 was not ready 10 s after the reload")
    ready_at = time.time()
    harness.wait_until(lambda: any(c["relay"] == relay_addr(4) for c in conns(rate)
                                   if c.get("relay")), 10, "a connection to reach relay 4")
    done = stop_rate(rate)
    records = conns(rate)
    via4 = sorted(c["t_open"] for c in records if c.get("relay") == relay_addr(4))
    check(via4[0] >= last_503, f"a connection reached relay 4 {last_503 - via4[0]:.3f}s "
                               "before it was ready")
    check(via4[0] - ready_at <= 2.0, f"relay 4's first connection came {via4[0] - ready_at:.2f}s "
                                     "after it was ready")
    check(done["failed"] == 0, f"{done['failed']} connections failed: "
                               f"{[c for c in records if not c['ok']][:3]}")
    ctx.note(f"relay 4 took its first connection {via4[0] - ready_at:.2f}s after /ready "
             f"turned 200; {len(via4)} of {done['ok']} in all")


LONG_TRANSFERS = 50


def long_client(fleet, relays, count=LONG_TRANSFERS, pace=2 << 20, name="long"):
    """count downloads of the 24 MiB file kept in flight through relays
    (numbers), read at pace bytes a second each (2 MiB/s: about 12 s)."""
    c = fleet.client(name, ["--mode", "long", "--count", str(count), "--pace", str(pace),
                            "--relay",
                            ",".join(relay_addr(i) for i in relays), "--sha256",
                            fleet.big_sha256, "--attempts", str(count * 12), "--timeout", "60"])
    got = c.wait_json("inflight", 60)
    check(got["inflight"] == count, f"only {got['inflight']} transfers through {relays}")
    return c


def check_long(c, since, what):
    """Every transfer of long client c ended whole, and after since."""
    res = c.wait_json("long", 120)["long"]
    bad = [r for r in res if not r["ok"]]
    check(not bad, f"{len(bad)} of {len(res)} transfers {what} broke: {bad[:3]}")
    check(min(r["t_done"] for r in res) > since,
          f"a transfer {what} ended before the event it was to span")
    return res


@case("fleet_conntrack_leave_without_loss", per_io=False, budget=240, sanitized=False)
def leave(ctx):
    """SIGTERM to relay 2 (shutdown_grace 2 s) with 50 downloads in flight
    through it and 50 new connections a second: no new connection reaches
    it once the membership script has seen /ready fail (1 s at most after
    the signal); the 50 downloads end byte-exact; relay 2 exits 0 once
    drained; no connection fails anywhere. Prometheus saw ringrelay_ready
    at 0 while relay 2 was still leaving (its listeners open)."""
    fleet = conntrack_fleet(ctx, prometheus=True)
    transfers = long_client(fleet, [2])
    rate = rate_client(fleet)
    harness.wait_until(lambda: len(conns(rate)) >= 50, 20, "a second of new connections")
    term = time.time()
    fleet.relays[2].popen.send_signal(signal.SIGTERM)
    harness.wait_until(lambda: fleet.members_now() == [relay_addr(1), relay_addr(3)], 5,
                       "the balancer to drop relay 2")
    dropped = time.time()
    check(dropped - term <= 1.0, f"relay 2 was dropped {dropped - term:.2f}s after SIGTERM")
    harness.wait_until(lambda: "shutdown_grace over" in fleet.relays[2].stderr(), 10,
                       "relay 2's grace to end")
    res = check_long(transfers, term, "through relay 2")
    fleet.relays[2].exited(30)
    done = stop_rate(rate)
    records = conns(rate)
    late = [c for c in records if c.get("relay") == relay_addr(2) and c["t_open"] > term + 1.0]
    check(not late, f"{len(late)} new connections reached relay 2 over 1 s after SIGTERM")
    check(done["failed"] == 0, f"{done['failed']} of {done['opened']} connections failed: "
                               f"{[c for c in records if not c['ok']][:3]}")
    inst = f'instance="{relay_addr(2)}:9100"'
    seen = fleet.promql(f"count_over_time((ringrelay_ready{{{inst}}} == 0 and "
                        f"ringrelay_leaving{{{inst}}} == 1)[2m:250ms])")
    check(seen and float(seen[0]["value"][1]) >= 1,
          f"Prometheus never saw relay 2 not ready while still accepting: {seen}")
    via2 = sum(c.get("relay") == relay_addr(2) for c in records)
    ctx.note(f"relay 2 left the members {dropped - term:.2f}s after SIGTERM; "
             f"{len(res)} downloads through it finished whole; {done['ok']} new connections "
             f"({via2} through relay 2 before it left), none failed")


def kill_relay(fleet, i):
    """kill -9 relay i on purpose; returns when it was done."""
    killed = time.time()
    fleet.relays[i].kill()
    fleet.relays[i].checked = True  # its end is not a failure
    return killed


def failures_after(records, since):
    """The failed connections opened after since, and how long after it
    the last of them was opened."""
    failed = [c for c in records if not c["ok"] and c["t_open"] >= since]
    return failed, (max(c["t_open"] for c in failed) - since if failed else 0.0)


@case("fleet_conntrack_crash_and_host_loss", per_io=False, budget=240, sanitized=False)
def crash(ctx):
    """kill -9 relay 3, then (restarted) its host's link down, with
    downloads in flight through relays 1 and 2 and 50 new connections a
    second: the membership script drops relay 3 within a second or so each
    time (measured: the span of new connections that failed), and nothing
    through relays 1 and 2 breaks."""
    fleet = conntrack_fleet(ctx)
    transfers = long_client(fleet, [1, 2], count=20, pace=1 << 20)  # 24 s: both events
    rate = rate_client(fleet)
    harness.wait_until(lambda: len(conns(rate)) >= 50, 20, "a second of new connections")
    killed = kill_relay(fleet, 3)
    fleet.wait_members([1, 2])
    dropped = time.time() - killed
    harness.wait_until(lambda: len([c for c in conns(rate) if c["t_open"] > killed + 2]) >= 25,
                       20, "half a second of connections after the drop")
    failed, span = failures_after(conns(rate), killed)
    check(span <= 1.5, f"connections still failed {span:.2f}s after kill -9: {failed[-3:]}")
    check(all(c.get("relay") not in (relay_addr(1), relay_addr(2)) for c in failed),
          f"a connection through relay 1 or 2 failed: {failed[:3]}")

    fleet.start_relay(3)
    fleet.wait_members([1, 2, 3])
    mark = len(conns(rate))
    harness.wait_until(lambda: any(c.get("relay") == relay_addr(3) for c in conns(rate)[mark:]),
                       10, "relay 3 to take connections again")
    lost = time.time()
    fleet.run("r3", ["ip", "link", "set", "back", "down"])
    fleet.wait_members([1, 2])
    dropped_host = time.time() - lost
    harness.wait_until(lambda: len([c for c in conns(rate) if c["t_open"] > lost + 2]) >= 25,
                       20, "half a second of connections after the drop")
    done = stop_rate(rate)
    failed2, span2 = failures_after(conns(rate), lost)
    check(span2 <= 1.5, f"connections still failed {span2:.2f}s after the link went down")
    check_long(transfers, lost, "through relays 1 and 2")
    fleet.run("r3", ["ip", "link", "set", "back", "up"])
    ctx.note(f"kill -9: dropped after {dropped:.2f}s, {len(failed)} new connections failed "
             f"over {span:.2f}s; link down: dropped after {dropped_host:.2f}s, {len(failed2)} "
             f"failed over {span2:.2f}s; {done['ok']} ok in all; 20 downloads through relays "
             f"1 and 2 whole")


def check_gateway_log(fleet, results):
    """Each gateway server logged every request it took with the client's
    own address and port (from the PROXY header), the relay it came
    through, and itself."""
    # As multisets: a client may use an address and port again (the server
    # closes first, so the client's side keeps no TIME_WAIT).
    log = collections.Counter(gateway_lines(fleet.gateways))
    made = collections.Counter(f"{r['src']} via {r['relay']} to {r['gateway']} /who 200"
                               for r in results)
    check(log == made, f"the gateways' logs differ from the requests made: missing "
                       f"{list((made - log).items())[:2]}, extra {list((log - made).items())[:2]}")


def check_spread(ctx, results, relays):
    """600 /who results: none failed, every relay over 20 %, each client
    address on one gateway whichever relay it entered (and most entered
    through more than one, so that this shows something), both gateways
    used. Returns the count by relay."""
    bad = [r for r in results if not r["ok"]]
    check(not bad, f"{len(bad)} of {len(results)} requests failed: {bad[:3]}")
    by_relay = collections.Counter(r["relay"] for r in results)
    check(set(by_relay) == {relay_addr(i) for i in relays}, f"relays reached: {by_relay}")
    check(min(by_relay.values()) >= len(results) * 0.2, f"uneven spread: {by_relay}")
    gateways = collections.defaultdict(set)
    relays_of = collections.defaultdict(set)
    for r in results:
        src = r["src"].rsplit(":", 1)[0]
        gateways[src].add(r["gateway"])
        relays_of[src].add(r["relay"])
    check(all(len(g) == 1 for g in gateways.values()),
          f"a client address reached two gateways: {dict(gateways)}")
    check(sum(len(v) > 1 for v in relays_of.values()) >= len(SOURCES) // 2,
          "too few clients entered through more than one relay to show the hash holds")
    check(len({next(iter(g)) for g in gateways.values()}) == 2, "one gateway took every client")
    return by_relay


@case("fleet_bgp_spread_truth_and_join", per_io=False, budget=240, sanitized=False)
def bgp_spread(ctx):
    """The BGP tier: BIRD on the router (ECMP, L4 hash) and on each relay
    host, the announcer tying the announcement to /ready. 600 requests from
    16 addresses reach all three relays (none under 20 %) with the true
    client address at the gateway and client_ip_hash holding; a 4th relay
    whose BGP session is up is announced only once ready, and takes new
    connections within 2 s of it."""
    fleet = bgp_fleet(ctx)
    c = fleet.client("burst", ["--mode", "burst", "--count", str(SPREAD_CONNS)])
    results = c.wait_json("results", 120)["results"]
    by_relay = check_spread(ctx, results, (1, 2, 3))
    check_gateway_log(fleet, results)
    # The /128 too: over IPv6 from 4 addresses, through every relay, the
    # gateway told each client's own IPv6 address and port.
    want6 = sorted(relay_addr6(i) for i in (1, 2, 3))
    harness.wait_until(lambda: fleet.next_hops6() == want6, 20,
                       f"the router's IPv6 next hops to be {want6}")
    c6 = fleet.client("burst6", ["--mode", "burst", "--count", "120"], v6=True)
    results6 = c6.wait_json("results", 60)["results"]
    bad6 = [r for r in results6 if not r["ok"]]
    check(not bad6, f"{len(bad6)} of 120 IPv6 requests failed: {bad6[:3]}")
    check({r["relay"] for r in results6} == {relay_addr(i) for i in (1, 2, 3)},
          f"IPv6 requests reached {collections.Counter(r['relay'] for r in results6)}")
    rate = rate_client(fleet)
    fleet.start_bgp_relay(4, gateway_port=1)  # running, its session up, not ready
    harness.wait_until(lambda: "withdrawn" in fleet.announcers[4].stdout(), 10,
                       "relay 4's announcer to start withdrawn")
    harness.wait_until(lambda: "Established" in fleet.run(
        "r4", ["birdc", "-s", fleet.bird_socks[4], "show", "protocols", "upstream"]).stdout,
        20, "relay 4's BGP session")
    mark = len(conns(rate))
    harness.wait_until(lambda: len(conns(rate)) >= mark + 100, 20, "100 more connections")
    check(fleet.next_hops() == [relay_addr(i) for i in (1, 2, 3)],
          f"relay 4 was announced while not ready: {fleet.next_hops()}")
    fleet.relay_config(4)
    last_503 = reloaded = time.time()
    fleet.relays[4].popen.send_signal(signal.SIGHUP)
    while fleet.ready(4) != 200:
        last_503 = time.time()
        check(last_503 - reloaded < 10, "relay 4 was not ready 10 s after the reload")
    ready_at = time.time()
    harness.wait_until(lambda: any(c.get("relay") == relay_addr(4) for c in conns(rate)), 10,
                       "a connection to reach relay 4")
    done = stop_rate(rate)
    records = conns(rate)
    via4 = sorted(c["t_open"] for c in records if c.get("relay") == relay_addr(4))
    check(via4[0] >= last_503, "a connection reached relay 4 before it was ready")
    check(via4[0] - ready_at <= 2.0,
          f"relay 4's first connection came {via4[0] - ready_at:.2f}s after it was ready")
    # A next hop added to a plain ECMP route moves some flows: a connection
    # in flight just then may be reset, and only then.
    failed = [c for c in records if not c["ok"]]
    check(all(abs(c["t_open"] - ready_at) <= 2.0 for c in failed),
          f"connections failed away from the join: {failed[:3]}")
    ctx.note("per relay: " + ", ".join(f"{k} {v}" for k, v in sorted(by_relay.items())) +
             f"; 120 over IPv6, all ok; relay 4 announced and took a connection "
             f"{via4[0] - ready_at:.2f}s after ready; {len(failed)} of {done['opened']} new "
             f"connections reset as the route changed")


def broken_by_relay(results):
    """How many of the long transfers broke, by the relay they went through."""
    out = collections.Counter()
    for r in results:
        out[r["relay"]] += 0 if r["ok"] else 1
    return out


def long_results(c):
    return c.wait_json("long", 120)["long"]


def bgp_leave(ctx, resilient, leaving):
    """SIGTERM to relay `leaving` (shutdown_grace 2 s) in the BGP tier, with
    30 downloads in flight over the three relays and 50 new connections a
    second: the announcer withdraws within 1 s of the signal, no new
    connection reaches the relay after, and it exits 0 once its drain ends.
    Its in-flight downloads lose their path when the route goes (the
    client's packets go to another relay, which resets them; the relay
    hears nothing back, so its drain runs to drain_timeout, 5 s here); with
    plain ECMP the kernel may move flows of the survivors too. Measured and
    reported, with the new connections that failed."""
    fleet = bgp_fleet(ctx, resilient, drain_timeout="5s")
    transfers = long_client(fleet, [1, 2, 3], count=30)
    rate = rate_client(fleet)
    harness.wait_until(lambda: len(conns(rate)) >= 50, 20, "a second of new connections")
    term = time.time()
    fleet.relays[leaving].popen.send_signal(signal.SIGTERM)
    fleet.wait_next_hops([i for i in (1, 2, 3) if i != leaving], timeout=5)
    withdrawn = time.time() - term
    check(withdrawn <= 1.0, f"relay {leaving} was withdrawn {withdrawn:.2f}s after SIGTERM")
    fleet.relays[leaving].exited(20)
    res = long_results(transfers)
    done = stop_rate(rate)
    records = conns(rate)
    late = [c for c in records
            if c.get("relay") == relay_addr(leaving) and c["t_open"] > term + 1.0]
    check(not late, f"{len(late)} new connections reached relay {leaving} over 1 s after SIGTERM")
    broken = broken_by_relay(res)
    per = collections.Counter(r["relay"] for r in res)
    failed, span = failures_after(records, term)
    ctx.note(f"relay {leaving} withdrawn {withdrawn:.2f}s after SIGTERM; downloads broken "
             "(of in flight): "
             + ", ".join(f"{k} {broken[k]}/{per[k]}" for k in sorted(per))
             + f"; new connections failed: {len(failed)} of {done['opened']}")
    return broken


@case("fleet_bgp_leave_measured", per_io=False, budget=240, sanitized=False)
def bgp_leave_ecmp(ctx):
    """Relay 2 leaves a plain ECMP route (BIRD's merged multipath)."""
    bgp_leave(ctx, resilient=False, leaving=2)


@case("fleet_bgp_leave_first_next_hop", per_io=False, budget=240, sanitized=False)
def bgp_leave_ecmp_first(ctx):
    """Relay 1, the first next hop, leaves a plain ECMP route: the kernel's
    hash-threshold split moves part of the survivors' flows as well (for
    the middle next hop it happens not to)."""
    bgp_leave(ctx, resilient=False, leaving=1)


@case("fleet_bgp_leave_resilient_nexthops", per_io=False, budget=240, sanitized=False)
def bgp_leave_resilient(ctx):
    """Relay 1 leaves a route through a resilient next-hop group
    (deploy/bird/ringrelay-nexthops): only its buckets move, so no download
    through relays 2 and 3 breaks."""
    broken = bgp_leave(ctx, resilient=True, leaving=1)
    check(broken[relay_addr(2)] == 0 and broken[relay_addr(3)] == 0,
          f"downloads through the survivors broke: {dict(broken)}")


@case("fleet_bgp_crash_and_host_loss", per_io=False, budget=240, sanitized=False)
def bgp_crash(ctx):
    """In the BGP tier: kill -9 relay 3 (its BIRD and announcer live on:
    /ready stops answering, the announcer withdraws), then, restarted, its
    host's link down (BFD tells the router). Measured: how long until the
    router stops sending new connections there, the new connections that
    failed meanwhile, and the downloads through relays 1 and 2 that the
    ECMP rehash broke."""
    fleet = bgp_fleet(ctx)
    transfers = long_client(fleet, [1, 2], count=20, pace=1 << 20)  # 24 s: both events
    rate = rate_client(fleet)
    harness.wait_until(lambda: len(conns(rate)) >= 50, 20, "a second of new connections")
    killed = kill_relay(fleet, 3)
    fleet.wait_next_hops([1, 2], timeout=5)
    dropped = time.time() - killed
    check(dropped <= 1.0, f"relay 3 was withdrawn {dropped:.2f}s after kill -9")
    fleet.start_bgp_relay(3)
    fleet.wait_next_hops([1, 2, 3])
    lost = time.time()
    fleet.run("r3", ["ip", "link", "set", "back", "down"])
    fleet.wait_next_hops([1, 2], timeout=5)
    dropped_host = time.time() - lost
    check(dropped_host <= 1.0, f"relay 3's host was dropped {dropped_host:.2f}s after its link "
                               "went down (BFD: 0.3 s)")
    harness.wait_until(lambda: len([c for c in conns(rate) if c["t_open"] > lost + 2]) >= 25,
                       20, "half a second of connections after the drop")
    done = stop_rate(rate)
    records = conns(rate)
    failed, span = failures_after([c for c in records if c["t_open"] < lost], killed)
    failed2, span2 = failures_after(records, lost)
    res = long_results(transfers)
    broken = broken_by_relay(res)
    fleet.run("r3", ["ip", "link", "set", "back", "up"])
    ctx.note(f"kill -9: withdrawn after {dropped:.2f}s, {len(failed)} new connections failed "
             f"over {span:.2f}s; link down: dropped after {dropped_host:.2f}s (BFD), "
             f"{len(failed2)} failed over {span2:.2f}s; {done['ok']} ok in all; downloads "
             f"broken through relay 1: {broken[relay_addr(1)]}, relay 2: "
             f"{broken[relay_addr(2)]} (of 20)")


@case("fleet_leaves_nothing_behind", per_io=False, sanitized=False)
def nothing_behind(ctx):
    """Run after the fleet cases: no namespace of theirs, no process started
    from this run's directories (BIRD, Prometheus, nginx, the scripts, the
    relays), no BIRD control socket, and no nftables table in the machine's
    own namespace."""
    tag = f"rrf{os.getpid() % 100000}-"
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                      timeout=10).stdout.split() if n.startswith(tag)]
    check(not left, f"namespaces left behind: {left}")
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ctx.session_dir in cmd and int(pid) != os.getpid() and "fleet_leaves" not in cmd:
            procs.append(f"{pid}: {cmd[:120]}")
    check(not procs, f"processes left behind: {procs}")
    socks = [os.path.join(d, f) for d, _, files in os.walk(ctx.session_dir) for f in files
             if f == "bird.ctl"]
    check(not socks, f"BIRD sockets left behind: {socks}")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            timeout=10).stdout
    check("ringrelay_lb" not in tables, f"an nftables table in the machine's namespace: {tables}")
