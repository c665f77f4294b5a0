"""A fleet of relays behind the engines operators run (peers/fleet.py):
the connection-tracking tier (nftables DNAT by hash over the ready relays,
deploy/nftables) and Prometheus scraping every relay's admin listener.
What is asserted: connections spread over every relay, the gateways see
each client's true address, client_ip_hash keeps a client on one gateway
whichever relay it entered, a relay joins only once ready, leaves without
losing a byte, and one that crashes or loses its host stops getting new
connections within a second or so while the others lose nothing."""

import collections
import signal
import time

import harness
from harness import check
from peers.fleet import SOURCES, Fleet, relay_addr

from .base import case

SPREAD_CONNS = 600


def conns(helper):
    """The {"conn": ...} records a rate client has printed so far."""
    return [o["conn"] for o in helper.json_lines() if "conn" in o]


@case("fleet_conntrack_spread_truth_and_metrics", per_io=False, budget=180)
def spread(ctx):
    """Three relays behind the balancer: 600 requests from 16 source
    addresses reach every relay (none under 20 %), every gateway response
    names the client's own address and port, each client address always
    lands on the same gateway server whichever relay carried it, and
    Prometheus's sum of accepted connections over the fleet is 600."""
    fleet = Fleet(ctx)
    for i in (1, 2, 3):
        fleet.start_relay(i)
    fleet.start_balancer([1, 2, 3])
    fleet.wait_members([1, 2, 3])
    fleet.start_prometheus([1, 2, 3])
    c = fleet.client("burst", ["--mode", "burst", "--count", str(SPREAD_CONNS)])
    results = c.wait_json("results", 120)["results"]
    bad = [r for r in results if not r["ok"]]
    check(not bad, f"{len(bad)} of {len(results)} requests failed: {bad[:3]}")
    by_relay = collections.Counter(r["relay"] for r in results)
    ctx.note("per relay: " + ", ".join(f"{k} {v}" for k, v in sorted(by_relay.items())))
    check(set(by_relay) == {relay_addr(i) for i in (1, 2, 3)}, f"relays reached: {by_relay}")
    check(min(by_relay.values()) >= SPREAD_CONNS * 0.2, f"uneven spread: {by_relay}")
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
    log = fleet.gateways.access_lines()
    check(sum(" via " in ln and "/who" in ln for ln in log) == SPREAD_CONNS,
          f"gateway log lines: {len(log)}")

    def fleet_total():
        got = fleet.promql('sum(ringrelay_listener_accepted_connections_total{listener="public"})')
        return got and float(got[0]["value"][1]) == SPREAD_CONNS
    harness.wait_until(fleet_total, 15, f"Prometheus's fleet sum to reach {SPREAD_CONNS}")
    up = fleet.promql("sum(ringrelay_ready)")
    check(up and float(up[0]["value"][1]) == 3, f"ringrelay_ready over the fleet: {up}")
