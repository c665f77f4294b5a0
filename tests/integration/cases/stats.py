"""The stats socket: counters that match exactly what the test sent, the
Prometheus text format checked by promtool, JSON, the table, show conns,
the socket's mode, a stuck client that delays nobody, and the 17th client
that finds every slot taken."""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time

import harness
from harness import check
from kit import config as cfg
from kit.stats import listener_stats, named, query, stats_json
from kit.yaml_emit import dump
from peers.daemons import Nginx
from peers.helper import start_echo
from peers.proxy_header import proxy_v2
from peers.wire import connect, recv_exact, recv_to_eof

from .base import case, client


def start(ctx, sock, listeners, backends, **settings):
    """A relay with its stats socket at sock."""
    return cfg.start(ctx, cfg.document(listeners, backends, stats_socket=sock, **settings))


def echo_once(port, payload, src="127.0.0.1", want=None):
    want = payload if want is None else want
    c = connect(("127.0.0.1", port), src)
    try:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        got = recv_to_eof(c)
    finally:
        c.close()
    check(got == want, f"echoed {len(got)} of {len(want)} bytes")


def closed_all(path, listener, n):
    """Waits until the listener counted n connections closed."""
    def done():
        return listener_stats(path, listener)["active"] == 0 and \
            listener_stats(path, listener)["accepted"] == n
    harness.wait_until(done, 10, f"{n} connections on {listener} to be counted closed")


@case("stats_counters_match_traffic")
def counters_exact(ctx):
    """Ten echoed connections through a pool with one refusing server, and
    on a PROXY listener one good header, one forged (untrusted) and one bad:
    every counter says exactly that."""
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    e1, e2 = start_echo(ctx, "echo1").port, start_echo(ctx, "echo2").port
    dead = harness.free_port()
    web, pp = harness.free_port(), harness.free_port()
    start(ctx, sock,
          [cfg.listener("web", web, default_backend="app"),
           cfg.listener("pp", pp, default_backend="side", proxy_protocol_in="v2",
                        trusted_sources=["127.0.0.1/32"])],
          [cfg.backend("app", [e1, e2, dead]), cfg.backend("side", [e1])])
    for i in range(10):
        echo_once(web, bytes([i]) * 100)
    # Trusted, with a header: its 50 bytes are echoed.
    echo_once(pp, proxy_v2(("192.0.2.7", 4000), ("127.0.0.1", pp)) + b"h" * 50,
              want=b"h" * 50)
    # Untrusted (127.0.0.2) sending a header: refused with a reset.
    c = client(ctx, ("127.0.0.1", pp), "127.0.0.2")
    c.sendall(proxy_v2(("192.0.2.8", 4000), ("127.0.0.1", pp)))
    try:
        check(recv_to_eof(c) == b"", "untrusted header was answered")
    except ConnectionResetError:
        pass  # refused with a reset, as it should be
    # Trusted, but HTTP where the header belongs.
    c = client(ctx, ("127.0.0.1", pp))
    c.sendall(b"GET / HTTP/1.1\r\n\r\n")
    try:
        check(recv_to_eof(c) == b"", "bad header was answered")
    except ConnectionResetError:
        pass  # closed with the request unread: the kernel resets
    closed_all(sock, "web", 10)
    closed_all(sock, "pp", 3)

    s = stats_json(sock)
    w = named(s["listeners"], "web")
    check(w["accepted"] == 10 and w["ends"]["client_closed"] == 10 and w["refused"] == 0,
          f"listener web: {w}")
    p = named(s["listeners"], "pp")
    check((p["header_in"], p["header_untrusted"], p["header_bad"]) == (1, 1, 1),
          f"listener pp headers: {p}")
    check((p["ends"]["client_closed"], p["ends"]["untrusted_header"], p["ends"]["bad_header"])
          == (1, 1, 1), f"listener pp ends: {p['ends']}")
    # The forged header shows in the client's first bytes, read while the
    # backend connect runs: side gets the trusted and the untrusted client.
    side = named(s["backends"], "side")
    check(side["conns"] == 2 and side["bytes_from_client"] == 50, f"backend side: {side}")
    b = named(s["backends"], "app")
    check(b["conns"] == 10 and b["active"] == 0, f"backend: {b}")
    check(b["bytes_from_client"] == 1000 and b["bytes_from_server"] == 1000, f"backend bytes: {b}")
    servers = {x["name"]: x for x in b["servers"]}
    live = [servers[f"127.0.0.1:{e}"] for e in (e1, e2)]
    check(sum(x["conns"] for x in live) == 10, f"servers: {servers}")
    check(sum(x["bytes_from_client"] for x in live) == 1000, f"server bytes: {servers}")
    refused = servers[f"127.0.0.1:{dead}"]["connect_failures"]["refused"]
    check(refused == b["retries"] and refused > 0,
          f"{refused} refused connects but {b['retries']} retries")
    check(b["connect_time"]["count"] == 10 and b["duration"]["count"] == 10,
          f"histograms: connect {b['connect_time']['count']}, duration {b['duration']['count']}")
    check(b["first_byte_time"]["count"] == 10, f"first byte: {b['first_byte_time']['count']}")
    ctx.note(f"{refused} connects refused and retried; counters exact")


@case("stats_prometheus_passes_promtool")
def prometheus(ctx):
    """GET /metrics with curl --unix-socket: HTTP 200, the exposition format
    as promtool checks it, and the samples the traffic made."""
    if not shutil.which("promtool"):
        raise harness.TestSkip("promtool is not installed (Debian package prometheus)")
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    e1 = start_echo(ctx).port
    port = harness.free_port()
    dead = harness.free_port()
    start(ctx, sock, [cfg.listener("web", port)],
          [cfg.backend("app", [e1, dead], health_check={
              "mode": "tcp", "interval": "100ms", "timeout": "100ms", "rise": 1, "fall": 1})])
    harness.wait_until(lambda: f'server="127.0.0.1:{dead}"}} 0' in query(sock, "show metrics"),
                       10, "the dead server to be marked down")
    for _ in range(3):
        echo_once(port, b"x" * 10)
    closed_all(sock, "web", 3)
    got = subprocess.run(["curl", "-sS", "-i", "--max-time", "5", "--unix-socket", sock,
                          "http://localhost/metrics"], capture_output=True, timeout=10)
    check(got.returncode == 0, f"curl: {got.stderr}")
    head, _, body = got.stdout.decode().partition("\r\n\r\n")
    check(head.startswith("HTTP/1.0 200"), f"status: {head.splitlines()[0]}")
    check("Content-Type: text/plain; version=0.0.4" in head, f"head: {head}")
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                          text=True, timeout=30)
    check(lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(),
          f"promtool: {lint.stdout} {lint.stderr}")
    for sample in ['ringrelay_listener_accepted_connections_total{listener="web"} 3',
                   'ringrelay_backend_bytes_total{backend="app",from="client"} 30',
                   f'ringrelay_server_up{{backend="app",server="127.0.0.1:{e1}"}} 1',
                   'ringrelay_backend_connect_seconds_count{backend="app"} 3',
                   'ringrelay_config_generation 1',
                   f'ringrelay_server_up{{backend="app",server="127.0.0.1:{dead}"}} 0',
                   f'ringrelay_server_health_changes_total{{backend="app",'
                   f'server="127.0.0.1:{dead}"}} 1']:
        check(sample + "\n" in body, f"missing {sample}: "
              f"{[line for line in body.splitlines() if sample.split('{')[0] in line][:3]}")
    js = subprocess.run(["curl", "-sS", "--fail", "--max-time", "5", "--unix-socket", sock,
                         "http://localhost/stats.json"], capture_output=True, text=True,
                        timeout=10)
    check(named(json.loads(js.stdout)["listeners"], "web")["accepted"] == 3, "stats.json")
    nf = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                         sock, "http://localhost/nothing"], capture_output=True, text=True,
                        timeout=10)
    check(nf.stdout == "404", f"unknown path: {nf.stdout}")
    # HEAD, as curl -I and some scrapers send it: the same head, no body.
    hd = subprocess.run(["curl", "-sS", "-I", "--max-time", "5", "--unix-socket", sock,
                         "http://localhost/metrics"], capture_output=True, timeout=10)
    hhead, _, hbody = hd.stdout.decode().partition("\r\n\r\n")
    check(hd.returncode == 0 and hhead.startswith("HTTP/1.0 200") and hbody == "",
          f"HEAD /metrics: {hd.returncode} {hd.stdout[:200]!r} {hd.stderr!r}")
    check("Content-Length: " in hhead and "Content-Type: text/plain; version=0.0.4" in hhead,
          f"HEAD /metrics head: {hhead}")
    ctx.note(f"{body.count(chr(10))} lines, promtool clean")


@case("stats_socket_mode_table_conns_and_removal")
def socket_and_cli(ctx):
    """The socket is 0660 in the configured group; ringrelay stats prints the
    table; show conns lists an open connection with its client; a client
    that connects and says nothing holds no one up; the socket goes on exit."""
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    e1 = start_echo(ctx).port
    port = harness.free_port()
    rl = start(ctx, sock, [cfg.listener("web", port)], [cfg.backend("app", [e1])],
               stats_socket_group="adm")
    st = os.stat(sock)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
          f"mode {oct(st.st_mode)}")
    import grp
    check(st.st_gid == grp.getgrnam("adm").gr_gid, f"group {st.st_gid}")
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.connect(sock)  # says nothing
    ctx.on_cleanup(stuck.close)
    c = client(ctx, ("127.0.0.1", port), "127.0.0.3")
    c.sendall(b"open")
    check(recv_exact(c, 4) == b"open", "echo")
    start_t = time.monotonic()
    conns = query(sock, "show conns")
    took = time.monotonic() - start_t
    check(f"client=127.0.0.3:{c.getsockname()[1]} listener=web backend=app" in conns,
          f"show conns: {conns}")
    check(" open " in conns and "from_client=4 from_server=4" in conns, f"show conns: {conns}")
    table = subprocess.run([ctx.binary, "stats", "--socket", sock], capture_output=True,
                           text=True, timeout=10)
    check(table.returncode == 0, f"ringrelay stats: {table.stderr}")
    lines = table.stdout.splitlines()
    check(any(line.split()[:3] == ["web", "1", "1"] for line in lines if line),
          f"table: {table.stdout}")
    check(any(line.startswith("LISTENER") for line in lines), f"table: {table.stdout}")
    check("unknown command" in query(sock, "show nothing"), "unknown command answer")
    prom = subprocess.run([ctx.binary, "stats", "--socket", sock, "--prometheus"],
                          capture_output=True, text=True, timeout=10)
    check('ringrelay_listener_accepted_connections_total{listener="web"} 1' in prom.stdout,
          f"ringrelay stats --prometheus: {prom.stdout[:300]}")
    # A reload counts; a refused one too.
    rl.popen.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: stats_json(sock)["process"]["generation"] == 2, 10, "generation 2")
    with open(rl.argv[rl.argv.index("-c") + 1], "a") as f:
        f.write(dump({"bogus": 1}))
    rl.popen.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: stats_json(sock)["process"]["reload_failures"] == 1, 10,
                       "the refused reload to be counted")
    proc = stats_json(sock)["process"]
    check(proc["reloads"] == 1 and proc["generation"] == 2, f"process: {proc}")
    check(listener_stats(sock, "web")["accepted"] == 1,
          "a reload lost the listener's count")
    check("show conns" in query(sock, "help"), "help")
    c.close()
    rl.finish()
    check(not os.path.exists(sock), "the socket is still there after exit")
    ctx.note(f"show conns answered in {took * 1000:.0f} ms beside a silent client")


TABLE = 128  # clients each listening socket serves at once (STATS_SOCKET_CLIENTS)


def closed_by_peer(s):
    """True once the relay has closed s (EOF or a reset), False while open."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@case("stats_socket_full_table_closes_its_oldest_client")
def full_table(ctx):
    """128 silent clients fill the table; the 129th is answered all the
    same, and the oldest silent one is closed to make room, counted; a
    client that sends nothing is closed by itself (a request must be whole
    2 s after the accept), so silent clients cannot hold the socket."""
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    start(ctx, sock, [cfg.listener("web", harness.free_port())],
          [cfg.backend("app", [start_echo(ctx).port])])
    held = []
    for _ in range(TABLE):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctx.on_cleanup(s.close)
        s.connect(sock)  # says nothing
        held.append(s)
    # Accepted in order, into the slots in order: the 129th finds them full.
    proc = stats_json(sock)["process"]
    check(proc["stats_busy"] == 1, f"one made room, counted {proc['stats_busy']}")
    check(closed_by_peer(held[0]), "the oldest silent client is still open")
    check(not any(closed_by_peer(s) for s in held[1:]), "a newer silent client was closed")
    harness.wait_until(lambda: all(closed_by_peer(s) for s in held), 10,
                       "the silent clients to be closed at their deadline")
    check("\nringrelay_stats_clients_refused_total 1\n" in query(sock, "show metrics"),
          "show metrics")
    table = query(sock, "show stats")
    check(re.search(r"  stats clients refused 1\b", table), f"show stats: {table[:300]}")
    ctx.note("the 129th client answered; the oldest silent one made room; silent ones closed")


@case("stats_socket_bad_group_refused", per_io=False)
def bad_group(ctx):
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    path = cfg.write(ctx, cfg.document([cfg.listener("web", harness.free_port())],
                                       [cfg.backend("app", ["127.0.0.1:9"])],
                                       stats_socket=sock, stats_socket_group="nosuchgroup"))
    got = subprocess.run([ctx.binary, "-c", path], capture_output=True, text=True, timeout=10)
    check(got.returncode == 1, f"exit {got.returncode}")
    check("group nosuchgroup: no such group" in got.stderr, f"stderr: {got.stderr}")
    check(not os.path.exists(sock), "socket left behind")


@case("loadtest_script_reads_the_stats_socket", per_io=False)
def loadtest(ctx):
    """scripts/loadtest.sh against a relay in front of nginx (TLS, PROXY
    protocol): one summary with no errors, the relay's CPU, and the counters
    that moved, read from the stats socket before and after."""
    if not shutil.which("wrk"):
        raise harness.TestSkip("wrk is not installed")
    nginx = Nginx(ctx, ctx.session_dir)
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    port = harness.free_port()
    rl = start(ctx, sock, [cfg.listener("web", port)], [cfg.backend("kong", [nginx.port4])])
    got = subprocess.run(["bash", os.path.join(harness.REPO, "scripts", "loadtest.sh"),
                          f"https://127.0.0.1:{port}/", "--duration", "1s", "--connections", "2",
                          "--pid", str(rl.pid), "--stats-socket", sock],
                         capture_output=True, text=True, timeout=60)
    check(got.returncode == 0, f"loadtest.sh exited {got.returncode}: {got.stderr} {got.stdout}")
    out = got.stdout
    check("errors       0" in out and "relay CPU" in out, f"summary: {out}")
    accepted = [line for line in out.splitlines()
                if 'ringrelay_backend_connections_total{backend="kong"} +' in line]
    check(len(accepted) == 1 and int(accepted[0].rsplit("+", 1)[1]) >= 2,
          f"the counters that moved: {out}")
    ctx.note(accepted[0].strip())
