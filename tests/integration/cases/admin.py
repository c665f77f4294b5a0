"""The admin HTTP listener and readiness, what a fleet's health checks,
BGP announcers and Prometheus talk to: /ready, /metrics and /stats.json
over TCP to the allowed addresses only; readiness that follows the default
backends' health and the process's phase; and the graceful leave, where a
SIGTERM makes the relay not ready at once but keeps it accepting for
shutdown_grace before it drains."""

import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import check
from kit import config as cfg
from kit.stats import query, stats_json
from peers.backends import Listener
from peers.daemons import Nginx
from peers.helper import start_echo
from peers.wire import recv_to_eof

from .base import case, listener
from .drain import refused, running, sigusr2_successor
from .service import Notify, nobody_dir


def http(port, path, method="GET", timeout=5):
    """One HTTP/1.0 request to 127.0.0.1:port: (status, headers text, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(f"{method} {path} HTTP/1.0\r\nHost: relay\r\n\r\n".encode())
        raw = recv_to_eof(s).decode()
    finally:
        s.close()
    head, _, body = raw.partition("\r\n\r\n")
    status = int(head.split(" ", 2)[1])
    return status, head, body


def metric(text, name):
    """The value of an unlabelled sample in Prometheus text."""
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    check(m, f"no {name} in the metrics")
    return float(m.group(1))


def series(text):
    """Every sample's name and labels, without its value."""
    return sorted(line.rsplit(" ", 1)[0] for line in text.splitlines()
                  if line and not line.startswith("#"))


def echo_through(port, payload=b"ping\n"):
    """A full echo through the relay at port; returns what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return recv_to_eof(s)
    finally:
        s.close()


@case("admin_listener_serves_ready_metrics_and_json", per_io=False)
def admin_serves(ctx):
    """GET and HEAD /ready, /metrics and /stats.json on the admin port; the
    metrics are the stats socket's own series; anything but those paths,
    or a line command, gets 404 or 400; the process is ready."""
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    admin = harness.free_port()
    cfg.start(ctx, cfg.document([cfg.listener("web", harness.free_port())],
                                [cfg.backend("app", [start_echo(ctx).port])],
                                stats_socket=sock, admin={"listen": f"127.0.0.1:{admin}"}))
    status, head, body = http(admin, "/ready")
    check(status == 200 and body == "ready\n", f"/ready: {status} {body!r}")
    status, head, body = http(admin, "/ready", "HEAD")
    check(status == 200 and body == "" and "Content-Length: 6" in head, f"HEAD /ready: {head}")
    status, _, body = http(admin, "/metrics")
    check(status == 200, f"/metrics: {status}")
    check(series(body) == series(query(sock, "show metrics")),
          "the admin listener's /metrics differs from the stats socket's")
    check(metric(body, "ringrelay_ready") == 1, "ringrelay_ready is not 1")
    status, _, body = http(admin, "/stats.json")
    proc = json.loads(body)["process"]
    check(status == 200 and proc["ready"] is True and proc["not_ready"] == "", f"json: {proc}")
    status, _, body = http(admin, "/nothing")
    check(status == 404 and "/ready" in body, f"/nothing: {status} {body!r}")
    s = socket.create_connection(("127.0.0.1", admin), timeout=5)
    s.sendall(b"show conns\n")
    got = recv_to_eof(s).decode()
    s.close()
    check(got.startswith("HTTP/1.0 400") and "GET or HEAD /, /ready" in got,
          f"a line command on the admin port got {got!r}")
    check(query(sock, "show ready") == "ready\n", "show ready on the stats socket")


@case("admin_listener_refuses_outside_allow", per_io=False)
def admin_allow(ctx):
    """The default allow list is loopback only; a client outside the list
    is answered 403 and closed, counted and logged, and the stats socket
    still answers."""
    port = harness.free_port()
    dump = subprocess.run([ctx.binary, "--listen", f"127.0.0.1:{port}", "--backend",
                           f"127.0.0.1:{port + 1}", "--dump-config"],
                          capture_output=True, text=True, timeout=10)
    check('allow: ["127.0.0.0/8", "::1/128"]' in dump.stdout, f"default allow: {dump.stdout}")
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    admin = harness.free_port()
    rl = cfg.start(ctx, cfg.document([cfg.listener("web", port)],
                                     [cfg.backend("app", [start_echo(ctx).port])],
                                     stats_socket=sock,
                                     admin={"listen": f"127.0.0.1:{admin}",
                                            "allow": ["10.0.0.0/8", "::1"]}))
    # Answered at accept, before any request is read: a client that has sent
    # nothing yet reads the whole refusal (one that has may see a reset).
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", admin), timeout=5)
        got = recv_to_eof(s).decode()
        s.close()
        check(got.startswith("HTTP/1.0 403") and "not in admin.allow" in got, f"{got!r}")
    check(stats_json(sock)["process"]["admin_refused"] == 3, "refusals not counted")
    check(metric(query(sock, "show metrics"), "ringrelay_admin_clients_refused_total") == 3,
          "refusals not in the metrics")
    harness.wait_until(lambda: "admin listener: refused 127.0.0.1:" in rl.stderr(), 5,
                       "the refusal to be logged")


@case("ready_follows_the_default_backends_health", per_io=False)
def ready_health(ctx):
    """Until a server of the default backend has passed a health check the
    relay is not ready ('starting'); with its only server down, /ready is
    503 naming the backend and ringrelay_ready 0; once the server listens
    and its check passes, 200 again, and a reload keeps that (the server's
    health is kept by address, so /ready never blinks)."""
    admin, dead = harness.free_port(), harness.free_port()
    rl = cfg.start(ctx, cfg.document(
        [cfg.listener("web", harness.free_port(), default_backend="kong")],
        [cfg.backend("kong", [dead], health_check={
            "mode": "tcp", "interval": "100ms", "timeout": "100ms", "rise": 1, "fall": 1})],
        admin={"listen": f"127.0.0.1:{admin}"}))
    seen = set()

    def down():
        status, _, body = http(admin, "/ready")
        seen.add(body)
        return status == 503 and body == "backend kong: no server up\n"
    harness.wait_until(down, 10, "/ready to say the backend has no server up")
    check(seen <= {"backend kong: no server up\n",
                   "starting: backend kong: no server has passed a health check yet\n"},
          f"/ready said {seen} on the way")
    check(metric(http(admin, "/metrics")[2], "ringrelay_ready") == 0, "ringrelay_ready is not 0")
    lst = Listener("127.0.0.1", dead, 16, 5)
    ctx.on_cleanup(lst.close)
    harness.wait_until(lambda: http(admin, "/ready")[0] == 200, 10, "/ready to pass again")
    generation = json.loads(http(admin, "/stats.json")[2])["process"]["generation"]
    rl.popen.send_signal(signal.SIGHUP)
    answers = set()

    def reloaded():
        status, _, body = http(admin, "/stats.json")
        answers.add(http(admin, "/ready")[0])
        return json.loads(body)["process"]["generation"] == generation + 1
    harness.wait_until(reloaded, 10, "the reload")
    answers.add(http(admin, "/ready")[0])
    check(answers == {200}, f"/ready answered {answers} across the reload")


def leaving_relay(ctx, grace, **settings):
    """A relay to an echo server with an admin listener and shutdown_grace,
    reporting to a NOTIFY_SOCKET: (relay, port, admin port, notify)."""
    port, admin = harness.free_port(), harness.free_port()
    n = Notify(ctx, f"notify-{port}.sock")
    path = cfg.write(ctx, cfg.document([cfg.listener("web", port)],
                                       [cfg.backend("app", [start_echo(ctx).port])],
                                       admin={"listen": f"127.0.0.1:{admin}"},
                                       shutdown_grace=grace, **settings))
    old_env = ctx.relay_env
    ctx.relay_env = lambda: dict(old_env(), NOTIFY_SOCKET=n.path, WATCHDOG_USEC="600000")
    try:
        rl = harness.start_relay(ctx, ["-c", path])
    finally:
        ctx.relay_env = old_env
    n.wait("READY=1")
    return rl, port, admin, n


@case("shutdown_grace_fails_ready_but_keeps_accepting")
def grace(ctx):
    """SIGTERM with shutdown_grace 3s: /ready answers 503 'leaving' and
    ringrelay_leaving is 1 while new connections are still relayed (the
    readiness fails before the listeners close); then the port refuses,
    the drain runs, and the relay exits 0. Each phase is in the log, in
    sd_notify STATUS= and in the stats, and the watchdog is fed throughout."""
    rl, port, admin, n = leaving_relay(ctx, "3s")
    check(echo_through(port) == b"ping\n", "no echo before SIGTERM")
    rl.popen.send_signal(signal.SIGTERM)
    harness.wait_until(lambda: http(admin, "/ready")[0] == 503, 5, "/ready to fail")
    status, _, body = http(admin, "/ready")
    check(body.startswith("leaving"), f"/ready said {body!r}")
    metrics = http(admin, "/metrics")[2]
    check(metric(metrics, "ringrelay_ready") == 0 and metric(metrics, "ringrelay_leaving") == 1,
          "ready/leaving gauges")
    # Not ready, and still serving: a new client is relayed.
    check(echo_through(port, b"after SIGTERM\n") == b"after SIGTERM\n",
          "a client during shutdown_grace was not relayed")
    check(rl.alive() and not refused(port), "the port closed during shutdown_grace")
    harness.wait_until(lambda: refused(port), 15, "the port to close after the grace")
    rl.exited(15)
    check(rl.popen.returncode == 0, f"exit status {rl.popen.returncode}")
    log = rl.stderr()
    order = [log.find("SIGTERM: leaving: not ready"), log.find("shutdown_grace over: draining"),
             log.find("SIGTERM: draining"), log.find("drained: every connection finished")]
    check(-1 not in order and order == sorted(order), f"phases in the log: {order}\n{log[-800:]}")
    n.wait("STATUS=leaving")
    n.wait("STATUS=draining")
    leave = n.messages.index(next(m for m in n.messages if "STATUS=leaving" in m))
    drain = n.messages.index(next(m for m in n.messages if "STATUS=draining" in m))
    check(leave < drain, f"sd_notify order: {n.messages}")
    # systemd's watchdog (600 ms here) is still fed while the grace runs.
    check(sum("WATCHDOG=1" in m for m in n.messages[leave:drain]) >= 3,
          f"watchdog pings during the 3 s grace: {n.messages[leave:drain]}")


@case("shutdown_grace_cut_short_by_a_second_signal", per_io=False)
def grace_cut(ctx):
    """A second SIGTERM during a long shutdown_grace drains at once; SIGINT
    stops at once."""
    for sig, line in ((signal.SIGTERM, "Terminated during shutdown_grace: draining now"),
                      (signal.SIGINT, "Interrupt during shutdown_grace: stopping now")):
        rl, port, admin, _ = leaving_relay(ctx, "10m")
        rl.popen.send_signal(signal.SIGTERM)
        harness.wait_until(lambda: "SIGTERM: leaving" in rl.stderr(), 5, "the grace to start")
        check(http(admin, "/ready")[0] == 503, "ready during the grace")
        rl.popen.send_signal(sig)
        rl.exited(15)
        check(line in rl.stderr(), f"no '{line}': {rl.stderr()[-600:]}")
        check(("SIGTERM: draining" in rl.stderr()) == (sig == signal.SIGTERM),
              "drained when it should not have, or not when it should")


@case("upgrade_hands_the_admin_listener_over", per_io=False, budget=90)
def upgrade_admin(ctx):
    """SIGUSR2 with an admin listener and a long shutdown_grace: the
    successor takes over the old process's admin socket, and the old one,
    told to stop by its successor, skips the grace, lets go of the socket
    and drains; the admin port is the successor's after."""
    rl, port, admin, _ = leaving_relay(ctx, "10m")
    new_pid = sigusr2_successor(ctx, rl)
    rl.exited(30)
    check(rl.popen.returncode == 0, f"old process exit {rl.popen.returncode}")
    check("SIGTERM: leaving" not in rl.stderr(), "the old process waited out the grace")
    status, _, body = http(admin, "/stats.json")
    check(status == 200 and json.loads(body)["process"]["pid"] == new_pid,
          f"the admin port is not the successor's: {status} {body[:200]}")
    check(http(admin, "/ready")[0] == 200, "the successor is not ready")
    check(echo_through(port) == b"ping\n", "the successor does not relay")
    os.kill(new_pid, signal.SIGINT)
    deadline = time.monotonic() + 10
    while running(new_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    check(not running(new_pid), "the successor did not stop on SIGINT")


@case("upgrade_hands_over_only_once_ready", per_io=False, budget=90)
def upgrade_ready(ctx):
    """The successor of a hot upgrade takes admin clients, and asks its
    predecessor to drain, only once it is ready itself. Its default
    backend's first server is silent (its TLS check takes the whole 1 s
    timeout), so it is ready a second after it starts: /ready, asked all
    through the upgrade, never answers anything but 200."""
    silent = listener(ctx)  # accepts and says nothing
    nginx = Nginx(ctx, ctx.session_dir, proxy_protocol=False)
    admin = harness.free_port()
    rl = cfg.start(ctx, cfg.document(
        [cfg.listener("web", harness.free_port())],
        [cfg.backend("app", [silent.port, nginx.port4], proxy_protocol="off", health_check={
            "mode": "tls", "interval": "2s", "timeout": "1s", "rise": 1, "fall": 1})],
        admin={"listen": f"127.0.0.1:{admin}"}))
    harness.wait_until(lambda: http(admin, "/ready")[0] == 200, 10, "the relay to be ready")
    old = rl.pid
    rl.popen.send_signal(signal.SIGUSR2)
    answers = collections.Counter()
    while rl.alive():
        status, _, body = http(admin, "/ready")
        answers[(status, body.strip())] += 1
    rl.exited(30)
    check(set(answers) == {(200, "ready")}, f"/ready answered {dict(answers)} during the upgrade")
    new = json.loads(http(admin, "/stats.json")[2])["process"]["pid"]
    ctx.on_cleanup(lambda: os.kill(new, signal.SIGKILL) if running(new) else None)
    check(new != old and "ready after" in rl.stderr(), f"successor {new}: {rl.stderr()[-500:]}")
    os.kill(new, signal.SIGINT)
    ctx.note(f"{sum(answers.values())} /ready answers during the upgrade, all 200")


@case("reload_that_turns_health_checks_off_counts_servers_up", per_io=False)
def checks_off(ctx):
    """A server down by its checks, then a reload with the checks off: it
    counts as up at once (nothing would ever check it again), so the relay
    is ready and relays to it."""
    admin, port = harness.free_port(), harness.free_port()
    server = harness.free_port()

    def doc(mode):
        return cfg.document([cfg.listener("web", port, default_backend="kong")],
                            [cfg.backend("kong", [server], health_check={
                                "mode": mode, "interval": "100ms", "timeout": "100ms",
                                "rise": 1, "fall": 1})],
                            admin={"listen": f"127.0.0.1:{admin}"})
    rl = cfg.start(ctx, doc("tcp"))
    harness.wait_until(lambda: http(admin, "/ready")[2] == "backend kong: no server up\n", 10,
                       "the server to be down")
    echo = Listener("127.0.0.1", server, 16, 5)
    ctx.on_cleanup(echo.close)
    cfg.write(ctx, doc("off"))
    rl.popen.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: http(admin, "/ready")[0] == 200, 5,
                       "/ready to pass after the reload turned checks off")


@case("upgrade_as_another_user_keeps_the_admin_listener", per_io=False, budget=90)
def upgrade_user(ctx):
    """Started as root with user nobody: the admin socket belongs to nobody,
    so the successor (which runs as nobody) binds beside it and takes over."""
    run = nobody_dir(ctx)
    binary = os.path.join(ctx.tmpdir, "ringrelay")
    shutil.copy(os.path.realpath(ctx.binary), binary)
    admin = harness.free_port()
    path = cfg.write(ctx, cfg.document([cfg.listener("web", harness.free_port())],
                                       [cfg.backend("app", [start_echo(ctx).port])],
                                       user="nobody", stats_socket=f"{run}/stats.sock",
                                       admin={"listen": f"127.0.0.1:{admin}"}))
    rl = harness.start_relay(ctx, ["-c", path], binary=binary)
    old = rl.pid
    rl.popen.send_signal(signal.SIGUSR2)
    harness.wait_until(lambda: "SIGTERM from successor" in rl.stderr() or
                       "before it was ready" in rl.stderr(), 20, "the upgrade to end")
    check("SIGTERM from successor" in rl.stderr(), f"the upgrade failed: {rl.stderr()[-600:]}")
    rl.exited(30)
    new = json.loads(http(admin, "/stats.json")[2])["process"]["pid"]
    ctx.on_cleanup(lambda: os.kill(new, signal.SIGKILL) if running(new) else None)
    check(new != old, "the admin listener is not the successor's")
    os.kill(new, signal.SIGINT)


@case("reload_names_a_changed_admin_allow", per_io=False)
def allow_reload(ctx):
    """admin.allow is start-only: a reload that changes it, even the last of
    a long list, says so and keeps the list in force."""
    nets = [f"2001:db8:{i}::/64" for i in range(1, 7)]
    admin = harness.free_port()

    def doc(last):
        return cfg.document([cfg.listener("web", harness.free_port())],
                            [cfg.backend("app", [start_echo(ctx).port])],
                            admin={"listen": f"127.0.0.1:{admin}",
                                   "allow": ["127.0.0.0/8"] + nets[:-1] + [last]})
    rl = cfg.start(ctx, doc(nets[-1]))
    cfg.write(ctx, doc("2001:db8:99::/64"))
    rl.popen.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: "reload: " in rl.stderr() and "applied" in rl.stderr(), 10,
                       "the reload")
    check("reload: admin.allow: " in rl.stderr() and "2001:db8:99::/64" in rl.stderr() and
          "needs a restart" in rl.stderr(), f"no line about admin.allow: {rl.stderr()[-600:]}")


def raw_http(port, data, timeout=5):
    """data as sent to 127.0.0.1:port; the whole answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        return recv_to_eof(s)
    finally:
        s.close()


@case("ready_is_never_fooled_by_a_bad_request_line", per_io=False)
def ready_fooled(ctx):
    """On a relay that is not ready, a request line that is not exactly
    GET or HEAD, a path and HTTP/1.0 or HTTP/1.1 gets 400 with a status
    line (before: HTTP/2.0, the HTTP/0.9 form and 'HTTP/1.1x' got 200 and
    'unknown command'); the right one gets 503. The unix socket answers
    the same."""
    admin, dead = harness.free_port(), harness.free_port()
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    cfg.start(ctx, cfg.document(
        [cfg.listener("web", harness.free_port(), default_backend="kong")],
        [cfg.backend("kong", [dead], health_check={
            "mode": "tcp", "interval": "100ms", "timeout": "100ms", "rise": 1, "fall": 1})],
        stats_socket=sock, admin={"listen": f"127.0.0.1:{admin}"}))
    harness.wait_until(lambda: http(admin, "/ready")[0] == 503, 10, "/ready to say not ready")
    bad = [b"GET /ready HTTP/2.0\r\n\r\n", b"GET /ready\r\n\r\n", b"GET /ready\n",
           b"GET /ready HTTP/1.1x\r\n\r\n", b"HEAD /ready HTTP/2\r\n\r\n",
           b"GET  /ready HTTP/1.1\r\n\r\n", b"GET /ready HTTP/1.1 \r\n\r\n",
           b"GET /re\0ady HTTP/1.1\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
           b"get /ready HTTP/1.1\r\n\r\n", b"GET ready HTTP/1.0\r\n\r\n"]
    for data in bad:
        for name, ask in (("admin", lambda d: raw_http(admin, d)),
                          ("unix", lambda d: ask_unix(sock, d))):
            got = ask(data)
            check(got.startswith(b"HTTP/1.0 400 Bad Request\r\n") and b" 200 " not in got,
                  f"{name}: {data!r} got {got[:120]!r}")
    got = raw_http(admin, b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
    check(got.startswith(b"HTTP/1.0 503 ") and got.endswith(b"no server up\n"), f"{got!r}")


def ask_unix(path, data, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(data)
        return recv_to_eof(s)
    finally:
        s.close()


@case("ready_answers_through_an_admin_flood", per_io=False, budget=120)
def ready_flood(ctx):
    """500 idle and 500 slow-reading admin clients (a stuck agent, a slow
    scraper, a port scanner) hold the admin port; 100 /ready probes are all
    answered 200 (before: 16 idle clients made every probe 503 busy). The
    probes' times are noted, not asserted (make bench measures)."""
    admin = harness.free_port()
    echo = start_echo(ctx)
    # Many servers, so that /metrics is an answer a reader can be slow on.
    cfg.start(ctx, cfg.document(
        [cfg.listener("web", harness.free_port())],
        [cfg.backend("app", [cfg.server(echo.port, name=f"s{i}") for i in range(1)] +
                     [cfg.server(p) for p in range(20000, 20063)],
                     health_check={"mode": "off"})],
        admin={"listen": f"127.0.0.1:{admin}"}))
    harness.wait_until(lambda: http(admin, "/ready")[0] == 200, 10, "ready")
    held = []

    def hold(n, request):
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(5)
            s.connect(("127.0.0.1", admin))
            ctx.on_cleanup(s.close)
            if request:
                s.sendall(request)
            held.append(s)
    hold(500, None)
    hold(500, b"GET /metrics HTTP/1.0\r\n\r\n")
    times, answers = [], collections.Counter()
    for i in range(100):
        began = time.monotonic()
        status, _, body = http(admin, "/ready")
        times.append(time.monotonic() - began)
        answers[(status, body)] += 1
        if i % 10 == 0:
            hold(20, None)  # the idle ones keep coming back
    check(answers == {(200, "ready\n"): 100}, f"/ready answered {dict(answers)}")
    times.sort()
    ctx.note(f"100/100 answered 200; median {times[50] * 1000:.1f} ms, "
             f"p99 {times[98] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms")


@case("admin_slow_readers_past_64_mib_make_room", per_io=False, budget=120, sanitized=False)
def slow_readers_room(ctx):
    """Slow readers of a big /metrics (4,096 servers) hold more than the
    64 MiB of answers the stats thread keeps: a new scrape is answered
    200 all the same (before: 503 busy), and the oldest readers are closed
    to make room, counted. Not under the sanitizers: a 5.5 MiB report
    takes seconds to build there, so the bound is never reached in time,
    and the threads share nothing here that the flood test does not."""
    admin = harness.free_port()
    echo = start_echo(ctx)
    cfg.start(ctx, cfg.document(
        [cfg.listener("web", harness.free_port())],
        [cfg.backend("app", [cfg.server(f"127.4.{i // 250}.{1 + i % 250}:{echo.port}")
                             for i in range(4096)], health_check={"mode": "off"})],
        admin={"listen": f"127.0.0.1:{admin}"}))
    status, _, body = http(admin, "/metrics", timeout=30)
    check(status == 200, f"/metrics: {status}")
    readers = 64 * 2 ** 20 // len(body) + 8
    held, stop = [], threading.Event()
    for _ in range(readers):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", admin))
        ctx.on_cleanup(s.close)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        held.append(s)

    def trickle():  # a byte from each now and then: slow, never stuck
        while not stop.wait(0.3):
            for s in held:
                try:
                    s.recv(1, socket.MSG_DONTWAIT)
                except OSError:
                    pass
    t = threading.Thread(target=trickle)
    t.start()
    try:
        harness.wait_until(lambda: json.loads(http(admin, "/stats.json", timeout=30)[2])
                           ["process"]["stats_busy"] > 0, 60, "readers to be closed for room")
        status, _, got = http(admin, "/metrics", timeout=30)
    finally:
        stop.set()
        t.join()
    check(status == 200 and got.startswith("# HELP"), f"a scrape past the limit: {status}")
    ctx.note(f"{readers} readers of {len(body) >> 10} KiB each; a new scrape answered 200")
