"""Who may connect: a listener's deny and allow lists and its rate of new
connections per source, on the real client's address (the connection's,
or the one a trusted proxy's header names), IPv4 and IPv6, direct and
behind a proxy. A refused client is reset at once, counted and logged;
a flood from one address does not cost the others a connection."""

import errno
import os
import re
import signal
import socket
import subprocess

import harness
from harness import check
from kit import config as cfg
from kit.stats import listener_stats
from peers.helper import Helper, start_echo
from peers.netns import Namespace
from peers.proxy_header import proxy_v2

from .base import case

TRUST = ["127.0.0.1/32"]


def outcome(port, src=None, header=b"", host="127.0.0.1"):
    """One echo round trip through the relay at port from src, after
    header (a PROXY header, sent as a trusted proxy would): 'served', or
    'reset' when the relay refused it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        if src:
            s.bind((src, 0))
        s.connect((host, port))
        s.sendall(header + b"hello\n")
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(4096):
            got += chunk
        return "served" if got == b"hello\n" else f"closed after {got!r}"
    except OSError as e:
        # Reset before the client finished writing, or after.
        check(e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN), f"from {src}: {e}")
        return "reset"
    finally:
        s.close()


def via_proxy(port, client):
    """outcome() for client (an address) behind the trusted proxy at 127.0.0.1."""
    dst = ("2001:db8::80", 443) if ":" in client else ("192.0.2.80", 443)
    return outcome(port, "127.0.0.1", proxy_v2((client, 40000), dst))


@case("admission_allow_and_deny_v4_v6_direct_and_proxied", per_io=False)
def admission_lists(ctx):
    """Direct clients from 127.0.0.0/8 and ::1, and clients behind a trusted
    proxy from IPv4 and IPv6 networks: deny is checked first, then allow;
    each refused one is reset, counted as denied and logged with the rule;
    a reload that drops the deny entry lets its network in."""
    echo = start_echo(ctx)
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    direct, proxied = harness.free_port(), harness.free_port()
    doc = cfg.document(
        stats_socket=sock,
        listeners=[
            cfg.listener("direct", [direct, cfg.address(direct, "::1")],
                         allow=["127.0.0.0/25", "::1"], deny=["127.0.0.64/26"]),
            cfg.listener("proxied", proxied, proxy_protocol_in="v2", trusted_sources=TRUST,
                         allow=["192.0.2.0/24", "2001:db8::/32"], deny=["2001:db8:bad::/48"])],
        backends=[cfg.backend("app", [echo.port])])
    for li in doc["listeners"]:
        li["default_backend"] = "app"
    path = cfg.write(ctx, doc)
    rl = harness.start_relay(ctx, ["-c", path])
    want_direct = {"127.0.0.10": "served", "127.0.0.63": "served", "127.0.0.64": "reset",
                   "127.0.0.127": "reset", "127.0.0.128": "reset", "127.0.1.1": "reset"}
    got = {src: outcome(direct, src) for src in want_direct}
    got["::1"] = outcome(direct, "::1", host="::1")
    check(got == dict(want_direct, **{"::1": "served"}), f"direct clients: {got}")
    want_proxied = {"192.0.2.7": "served", "2001:db8::7": "served", "2001:db8:bad::7": "reset",
                    "2001:db9::7": "reset", "198.51.100.7": "reset", "::ffff:192.0.2.9": "served"}
    got = {src: via_proxy(proxied, src) for src in want_proxied}
    check(got == want_proxied, f"clients behind the proxy: {got}")
    check(listener_stats(sock, "direct")["ends"]["denied"] == 4 and
          listener_stats(sock, "proxied")["ends"]["denied"] == 3, "denied not counted")
    err = rl.stderr()
    for who, why in (("127.0.0.64:", "direct: deny 127.0.0.64/26"),
                     ("127.0.1.1:", "direct: not in its allow list"),
                     ("[2001:db8:bad::7]:40000", "proxied: deny 2001:db8:bad::/48")):
        check(re.search(rf"client {re.escape(who)}\d*: denied by listener {re.escape(why)}$",
                        err, re.M), f"not logged: {who} {why}")

    doc["listeners"][0]["deny"] = []
    cfg.write(ctx, doc)
    os.kill(rl.popen.pid, signal.SIGHUP)
    harness.wait_until(lambda: "reload: " in rl.stderr() and " applied" in rl.stderr(), 5,
                       "the reload")
    check(outcome(direct, "127.0.0.64") == "served", "the reload did not drop the deny entry")
    check(outcome(direct, "127.0.1.1") == "reset", "the reload dropped the allow list")


@case("admission_v6_direct_from_many_addresses", per_io=False)
def admission_v6(ctx):
    """In a namespace of its own, with ten IPv6 addresses on its loopback:
    clients from an allowed /64 are served but for one denied host, and
    clients from another network are not."""
    ns = Namespace(ctx, "adm")
    good = [f"2001:db8:1::{i}" for i in range(1, 9)]
    other = ["2001:db8:2::1", "fd00::1"]
    for a in good + other:
        subprocess.run(["ip", "-n", ns.name, "addr", "add", f"{a}/128", "dev", "lo", "nodad"],
                       check=True, timeout=10)
    echo = Helper(ctx, "echo", ["echo-backend"], prefix=ns.prefix)
    echo_port = echo.wait_json("port", 10)["port"]
    port = harness.free_port()
    doc = cfg.document(
        listeners=[cfg.listener("v6", cfg.address(port, "2001:db8:1::1"),
                                allow=["2001:db8:1::/64"], deny=["2001:db8:1::5"],
                                default_backend="app")],
        backends=[cfg.backend("app", [echo_port])])
    harness.start_relay(ctx, ["-c", cfg.write(ctx, doc)], wrapper=ns.prefix)
    probe = Helper(ctx, "sources", ["sources-client", "--target", f"[2001:db8:1::1]:{port}",
                                    "--sources", ",".join(good + other)], prefix=ns.prefix)
    got = probe.wait_json("results", 30)["results"]
    want = {a: "reset" if a == "2001:db8:1::5" or a in other else "served" for a in good + other}
    check(got == want, f"sources: {got}")


@case("admission_rate_limit_holds_a_flood_not_the_others", per_io=False, budget=90)
def admission_rate(ctx):
    """max_connection_rate_per_source 100: one address opening up to 2,000
    connections a second is held to 100 in each second, the rest reset and
    counted as rate_limited, while three other addresses at 40 a second each
    lose none; behind a trusted proxy the limit is the named client's."""
    echo = start_echo(ctx)
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    port, proxied = harness.free_port(), harness.free_port()
    cfg.start(ctx, cfg.document(
        stats_socket=sock,
        listeners=[cfg.listener("web", port, max_connection_rate_per_source=100,
                                default_backend="app"),
                   cfg.listener("proxied", proxied, proxy_protocol_in="v2", trusted_sources=TRUST,
                                max_connection_rate_per_source=3, default_backend="app")],
        backends=[cfg.backend("app", [echo.port])]))
    others = [Helper(ctx, f"rate-{i}", ["rate-client", "--target", f"127.0.0.1:{port}",
                                        "--rate", "40", "--source", f"127.0.0.{i}"])
              for i in (3, 4, 5)]
    for o in others:
        o.wait_json("started", 10)
    flood = Helper(ctx, "flood", ["rate-client", "--target", f"127.0.0.1:{port}",
                                  "--rate", "2000", "--source", "127.0.0.2", "--timeout", "5"])
    flood.wait_json("started", 10)
    harness.wait_until(lambda: listener_stats(sock, "web")["ends"]["rate_limited"] >= 4000, 20,
                       "4,000 of the flood's connections to be refused")
    for h in [flood] + others:
        os.kill(h.popen.pid, signal.SIGTERM)
    f = flood.wait_json("done", 15)["done"]
    p99 = []
    for o in others:
        d = o.wait_json("done", 15)["done"]
        check(d["failed"] == 0 and d["ok"] > 0, f"{o.name} lost connections to the flood: {d}")
        p99.append(d["p99_ms"])
    # The one-second windows its run touched, and one more for the
    # connections the relay took from its queue a moment after.
    seconds = int(f["seconds"]) + 3
    check(0 < f["ok"] <= 100 * seconds, f"the flood got {f['ok']} in {f['seconds']} s")
    limited = listener_stats(sock, "web")["ends"]["rate_limited"]
    check(f["failed"] == limited and set(f["errors"]) <= {"ConnectionResetError",
                                                         "IncompleteReadError", "BrokenPipeError"},
          f"the flood's {f['failed']} failures ({f['errors']}) are not the {limited} refused")

    got = [via_proxy(proxied, "198.51.100.9") for _ in range(10)]
    served = got.count("served")
    check(3 <= served <= 6 and got.count("reset") == 10 - served,
          f"ten behind the proxy, limit 3 a second: {got}")
    check(listener_stats(sock, "proxied")["ends"]["rate_limited"] == 10 - served,
          "not counted on the proxied listener")
    check(via_proxy(proxied, "198.51.100.10") == "served", "another client behind the proxy")
    ctx.note(f"flood: {f['opened']} connections in {f['seconds']} s, {f['ok']} served; "
             f"the others' round trips p99 {max(p99)} ms")
