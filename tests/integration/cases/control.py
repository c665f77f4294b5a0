"""The runtime API on the stats socket, as an operator uses it on a Kong
fleet: drain a server before upgrading it (open connections continue,
new ones go elsewhere), weigh servers, put one in maint (no checks),
reset a server's sessions, disable a listener, and all of it refused on a
read-only socket; bad input changes nothing; a reload keeps what was set.
The servers are real nginx with proxy_protocol, as Kong runs it."""

import collections
import os
import signal
import socket
import threading
import time

import harness
from harness import check
from kit import config as cfg
from kit.stats import backend_stats, listener_stats, named, query, stats_json
from kit.tls import insecure_context
from peers.daemons import Nginx
from peers.helper import start_echo
from peers.wire import connect, recv_to_eof

from .base import case, listener, wait_closed
from .cli import run_cli
from .dns import Dnsmasq


def kong_pair(ctx, **settings):
    """Two nginx servers with proxy_protocol (Kong's listen ... ssl
    proxy_protocol), a relay with an admin-level stats socket in front of
    them (one worker: round robin is then exact), and the socket's path."""
    a = Nginx(ctx, ctx.session_dir, name="kong-a")
    b = Nginx(ctx, ctx.session_dir, name="kong-b")
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    port = harness.free_port()
    doc = cfg.document(
        workers=1, stats_socket=sock, stats_socket_level="admin",
        listeners=[cfg.listener("web", port)],
        backends=[cfg.backend("kong", [cfg.server(a.port4, name="kong-a"), b.port4],
                              **settings)])
    rl = cfg.start(ctx, doc)
    return a, b, rl, sock, port, doc


class Kept:
    """An HTTPS client through the relay that keeps its connection open
    (HTTP/1.1 keep-alive), to ask again later on the same connection."""

    def __init__(self, ctx, port):
        raw = connect(("127.0.0.1", port), None, 10)
        ctx.on_cleanup(raw.close)
        self.port = raw.getsockname()[1]
        self.tls = insecure_context().wrap_socket(raw, server_hostname="localhost")
        ctx.on_cleanup(self.tls.close)

    def get(self):
        """One GET on the kept connection; returns nginx's body."""
        self.tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.tls.recv(65536)
            check(chunk, "the kept connection closed")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(body) < length:
            body += self.tls.recv(65536)
        check(head.startswith(b"HTTP/1.1 200"), f"the kept connection got {head[:40]!r}")
        return body.decode()


def served_by(nginx, client_port):
    """Whether nginx logged a request from the relay's client at client_port."""
    return any(line.split(" ")[1] == str(client_port) for line in nginx.access_lines())


def https_once(port):
    """A new HTTPS connection through the relay, one GET; returns the
    client's port (nginx logs it from the PROXY header)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    client_port = raw.getsockname()[1]
    with insecure_context().wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        got = recv_to_eof(tls)
    check(got.startswith(b"HTTP/1.1 200"), f"a new client got {got[:40]!r}")
    return client_port


def which(a, b, client_port):
    """'a' or 'b': the nginx that served client_port (exactly one did; it
    logs a kept-alive request just after answering it)."""
    hits = harness.wait_until(
        lambda: [n for n, x in (("a", a), ("b", b)) if served_by(x, client_port)], 5,
        f"nginx to log the request of client port {client_port}")
    check(len(hits) == 1, f"client port {client_port} was served by {hits}")
    return hits[0]


def turned_away(port):
    """How a new client of the relay at port ends: "EOF" or the error that
    ended it. The relay may reset it before connect() has returned (its
    accept and reset beat the client's own look at the socket), which is
    the same answer, given sooner."""
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionResetError:
        return "ConnectionResetError"
    try:
        return wait_closed(c, 5)[1]
    finally:
        c.close()


def server_cli(ctx, sock, *args):
    """`ringrelay server --socket sock args`: (exit status, stdout, stderr)."""
    return run_cli(ctx, ["server", "--socket", sock, *args])


def server_json(sock, backend, key):
    """One server of a backend as show stats json gives it."""
    return named(backend_stats(sock, backend)["servers"], key)


@case("control_drain_weight_and_ready_with_nginx", per_io=False, budget=90)
def control_drain(ctx):
    """Drain one of two nginx servers: both kept connections, one on each,
    go on answering; every new client goes to the other. show servers says
    drain, in words; readiness holds while one server is open and fails,
    naming why, once the other's weight is 0. Weights 1 and 3 then split
    eight clients 2 and 6, and ready brings the drained one back."""
    a, b, rl, sock, port, _ = kong_pair(ctx)
    a_key, b_key = f"127.0.0.1:{a.port4}", f"127.0.0.1:{b.port4}"
    kept = [Kept(ctx, port) for _ in range(2)]
    for k in kept:
        k.get()
    on = sorted(which(a, b, k.port) for k in kept)
    check(on == ["a", "b"], f"the two kept connections went to {on}")

    rc, out, err = server_cli(ctx, sock, "drain", "kong/kong-a")
    check(rc == 0 and out.startswith(f"ok: kong/{a_key} state drain (was ready)"),
          f"ringrelay server drain: {rc} {out!r} {err!r}")
    check(f"stats socket (uid={os.getuid()} pid=" in rl.stderr() and
          f"server {a_key}: state drain (was ready)" in rl.stderr(),
          f"no log line naming who drained it: {harness.tail(rl.stderr())}")
    srv = server_json(sock, "kong", a_key)
    check((srv["state"], srv["admin"], srv["health"], srv["server_name"]) ==
          ("drain", "drain", "up", "kong-a"), f"show stats json: {srv}")
    table = query(sock, "show servers")
    row = next(line for line in table.splitlines() if a_key in line)
    check(row.split()[2:7] == ["kong-a", "drain", "up", "drain", "1/1"],
          f"show servers row: {row!r}")

    news = [which(a, b, https_once(port)) for _ in range(6)]
    check(news == ["b"] * 6, f"new clients after the drain went to {news}")
    for k in kept:  # open connections continue, on whichever server
        check(k.get().strip() == "127.0.0.1", "a kept connection stopped answering")
    check(query(sock, "show ready") == "ready\n", "not ready with one server open")

    rc, out, _ = server_cli(ctx, sock, "weight", f"kong/{b_key}", "0")
    check(rc == 0 and "weight 0 (was 1, configured 1)" in out, f"weight 0: {rc} {out!r}")
    ready = query(sock, "show ready")
    check("backend kong: no server up and ready" in ready, f"show ready: {ready!r}")
    how = turned_away(port)
    check(how in ("EOF", "ConnectionResetError"), f"a client with no server open: {how}")
    check(listener_stats(sock, "web")["ends"]["no_server"] == 1, "no_server not counted")

    rc, out, _ = server_cli(ctx, sock, "ready", f"kong/{a_key}")
    check(rc == 0 and "state ready (was drain)" in out, f"ready: {rc} {out!r}")
    rc, out, _ = server_cli(ctx, sock, "weight", f"kong/{b_key}", "3")
    check(rc == 0, f"weight 3: {rc} {out!r}")
    srv = server_json(sock, "kong", b_key)
    check((srv["weight"], srv["weight_configured"], srv["state"]) == (3, 1, "up"),
          f"after weight 3: {srv}")
    spread = [which(a, b, https_once(port)) for _ in range(8)]
    check(spread.count("a") == 2 and spread.count("b") == 6,
          f"weights 1 and 3 split eight clients {spread}")
    metrics = query(sock, "show metrics")
    check(f'ringrelay_server_weight{{backend="kong",server="{b_key}"}} 3' in metrics and
          f'ringrelay_server_admin_state{{backend="kong",server="{a_key}",state="ready"}} 1'
          in metrics, "the weight and admin state are not in the metrics")
    check(stats_json(sock)["process"]["commands"] == 4, "commands not counted")


class Counted:
    """A listener whose connections (health checks) are counted as taken."""

    def __init__(self, ctx):
        self.lst = listener(ctx)
        self.port = self.lst.port
        self.n = 0

    def count(self):
        while self.lst.pending():
            self.lst.accept(timeout=1).close()
            self.n += 1
        return self.n


@case("control_maint_stops_health_checks_until_ready", per_io=False)
def control_maint(ctx):
    """maint takes a server out and stops its health checks (its listener
    sees no more connections while the other server's sees five); ready
    brings it back only once checks pass again (it is down until then)."""
    srv, other = Counted(ctx), Counted(ctx)
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    check_cfg = {"mode": "tcp", "interval": "100ms", "timeout": "300ms", "rise": 3, "fall": 1}
    rl = cfg.start(ctx, cfg.document(
        stats_socket=sock, stats_socket_level="admin",
        listeners=[cfg.listener("web", harness.free_port())],
        backends=[cfg.backend("app", [srv.port, other.port], health_check=check_cfg)]))
    key = f"127.0.0.1:{srv.port}"
    harness.wait_until(lambda: srv.count() > 0, 5, "a health check of the server")
    check(query(sock, f"set server app/{key} state maint").startswith("ok: "), "maint refused")
    # A round of checks that was under way when maint came ends first.
    start = other.count()
    harness.wait_until(lambda: other.count() >= start + 2, 5, "a round of checks to end")
    before, start = srv.count(), other.count()
    harness.wait_until(lambda: other.count() >= start + 5, 5, "five checks of the other server")
    check(srv.count() == before, f"the server in maint was checked {srv.count() - before} times")
    check(server_json(sock, "app", key)["state"] == "maint", "show stats: not maint")
    out = query(sock, f"set server app/{key} state ready")
    check("state ready (was maint)" in out, f"ready: {out!r}")
    check(server_json(sock, "app", key)["state"] == "down",
          "out of maint, the server is not down until its checks pass")
    harness.wait_until(lambda: srv.count() and server_json(sock, "app", key)["state"] == "up",
                       5, "three checks to bring it up")
    check(f"server {key}: state ready (was maint); down until its health checks pass"
          in rl.stderr(), "the log does not say it waits for checks")


@case("control_shutdown_sessions_resets_only_that_server", per_io=False)
def control_shutdown(ctx):
    """shutdown sessions server resets every open connection to that
    server, across workers, counted as server_shutdown; the other server's
    connection stays up."""
    a, b = start_echo(ctx, "echo-a"), start_echo(ctx, "echo-b")
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    port = harness.free_port()
    cfg.start(ctx, cfg.document(
        workers=2, stats_socket=sock, stats_socket_level="admin",
        listeners=[cfg.listener("web", port)],
        backends=[cfg.backend("app", [a.port, b.port])]))
    conns = []
    for i in range(6):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        ctx.on_cleanup(c.close)
        c.sendall(b"hello %d\n" % i)
        check(c.recv(64) == b"hello %d\n" % i, "no echo")
        conns.append(c)
    a_key = f"127.0.0.1:{a.port}"
    on_a = server_json(sock, "app", a_key)["active"]
    check(0 < on_a < 6, f"round robin put {on_a} of 6 on one server")
    out = query(sock, f"shutdown sessions server app/{a_key}")
    check(out == f"ok: app/{a_key}: {on_a} connections reset\n", f"shutdown sessions: {out!r}")
    alive = 0
    for i, c in enumerate(conns):
        try:
            c.sendall(b"again %d\n" % i)
            alive += c.recv(64) == b"again %d\n" % i
        except OSError:
            pass
    check(alive == 6 - on_a, f"{alive} of the 6 connections still echo, want {6 - on_a}")
    ends = listener_stats(sock, "web")["ends"]
    check(ends["server_shutdown"] == on_a, f"server_shutdown counted {ends['server_shutdown']}")


@case("control_disable_listener_resets_at_once", per_io=False)
def control_disable(ctx):
    """A disabled listener resets each new client at once (never leaves it
    waiting), counts it as listener_disabled, keeps open connections, and
    serves again once enabled; the state is in the JSON and the metrics."""
    echo = start_echo(ctx)
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    port = harness.free_port()
    cfg.start(ctx, cfg.document(
        stats_socket=sock, stats_socket_level="admin",
        listeners=[cfg.listener("web", port)],
        backends=[cfg.backend("app", [echo.port])]))
    open_conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    ctx.on_cleanup(open_conn.close)
    open_conn.sendall(b"one\n")
    check(open_conn.recv(16) == b"one\n", "no echo before disabling")
    out = query(sock, "disable listener web")
    check(out.startswith("ok: listener web disabled"), f"disable: {out!r}")
    for _ in range(3):
        how = turned_away(port)
        check(how == "ConnectionResetError", f"a client of the disabled listener: {how}")
    st = listener_stats(sock, "web")
    check(st["disabled"] and st["ends"]["listener_disabled"] == 3,
          f"disabled {st['disabled']}, counted {st['ends']['listener_disabled']}")
    check('ringrelay_listener_disabled{listener="web"} 1' in query(sock, "show metrics"),
          "not in the metrics")
    open_conn.sendall(b"two\n")
    check(open_conn.recv(16) == b"two\n", "the open connection stopped while disabled")
    check(query(sock, "enable listener web").startswith("ok: listener web enabled"), "enable")
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"three\n")
    c.shutdown(socket.SHUT_WR)
    check(recv_to_eof(c) == b"three\n", "not served after enable")
    c.close()


@case("control_read_level_and_bad_input_change_nothing", per_io=False)
def control_refusals(ctx):
    """At the default level (read) every write command gets a permission
    refusal, counted, never 'unknown command'; at admin level, an unknown
    backend, server or listener, a weight out of range, a malformed
    command and a line over 4 KiB each get one line naming the problem,
    and the servers are as they were."""
    echo = start_echo(ctx)
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    doc = cfg.document(stats_socket=sock, listeners=[cfg.listener("web", harness.free_port())],
                       backends=[cfg.backend("app", [cfg.server(echo.port, weight=4)],
                                             balance="client_ip_hash")])
    rl = cfg.start(ctx, doc)
    key = f"127.0.0.1:{echo.port}"
    for cmd in (f"set server app/{key} state drain", "disable listener web",
                f"shutdown sessions server app/{key}"):
        out = query(sock, cmd)
        check(out == "error: permission denied: stats socket is read-only "
                     "(stats_socket_level: read); nothing changed\n",
              f"{cmd} at level read: {out!r}")
    rc, _, err = server_cli(ctx, sock, "drain", f"app/{key}")
    check(rc == 1 and "permission denied" in err, f"ringrelay server at level read: {rc} {err!r}")
    metrics = query(sock, "show metrics")
    check("ringrelay_stats_commands_refused_total 4" in metrics, "refusals not counted")
    check(server_json(sock, "app", key)["admin"] == "ready", "a refused command changed it")
    rl.finish()

    doc["stats_socket_level"] = "admin"
    cfg.start(ctx, doc, name="relay-admin")
    before = stats_json(sock)["backends"]
    bad = {
        "set server nope/x state drain": "no backend 'nope'",
        "set server app/127.0.0.9:1 state drain": "no server '127.0.0.9:1' in backend 'app'",
        f"set server app/{key} weight 1001": "weight '1001': expected a whole number from 0 to 1000",
        f"set server app/{key} weight -1": "weight '-1'",
        f"set server app/{key} weight 2": "balances by client_ip_hash",
        f"set server app/{key} state sleepy": "expected state ready, drain or maint",
        f"set server {key} state drain": "expected BACKEND/SERVER",
        "disable listener nope": "no listener 'nope'",
        "shutdown sessions app": "expected shutdown sessions server BACKEND/SERVER",
        "set server app/" + "x" * 5000: "a request is one command line (no control bytes) or an "
                                         "HTTP GET, under 4 KiB",
    }
    for cmd, want in bad.items():
        out = query(sock, cmd)
        check(out.startswith("error: ") and want in out and out.count("\n") == 1,
              f"{cmd[:60]!r}: {out!r}")
    check(stats_json(sock)["backends"] == before, "a refused command changed a server")
    out = query(sock, f"set server app/{key} weight 0")
    check(out.startswith("ok: "), f"weight 0 on client_ip_hash: {out!r}")


@case("control_reload_keeps_runtime_state", per_io=False)
def control_reload(ctx):
    """SIGHUP keeps a drained server drained, a weight set, and a disabled
    listener disabled, and says so in the log; a weight changed in the
    file wins over the one set at runtime, also said."""
    a, b = start_echo(ctx, "echo-a"), start_echo(ctx, "echo-b")
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    doc = cfg.document(stats_socket=sock, stats_socket_level="admin",
                       listeners=[cfg.listener(name, harness.free_port(), default_backend="app")
                                  for name in ("web", "side")],
                       backends=[cfg.backend("app", [a.port, b.port])])
    path = cfg.write(ctx, doc)
    rl = harness.start_relay(ctx, ["-c", path])
    a_key, b_key = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
    for cmd in (f"set server app/{a_key} state drain", f"set server app/{b_key} weight 7",
                "disable listener side"):
        check(query(sock, cmd).startswith("ok: "), cmd)

    def reloaded(n):
        os.kill(rl.popen.pid, signal.SIGHUP)
        harness.wait_until(lambda: stats_json(sock)["process"]["reloads"] == n, 5, "the reload")

    reloaded(1)
    check(": kept the runtime state of 3 servers and listeners:" in rl.stderr(),
          f"the reload does not say what it kept: {harness.tail(rl.stderr())}")
    sa, sb = server_json(sock, "app", a_key), server_json(sock, "app", b_key)
    check((sa["admin"], sb["weight"]) == ("drain", 7), f"after the reload: {sa} {sb}")
    check(listener_stats(sock, "side")["disabled"], "the listener was enabled by the reload")

    doc["backends"][0]["servers"] = [cfg.server(a.port), cfg.server(b.port, weight=2)]
    cfg.write(ctx, doc)
    reloaded(2)
    sb = server_json(sock, "app", b_key)
    check((sb["weight"], sb["weight_configured"]) == (2, 2), f"file weight 2: {sb}")
    check(f"weight set to 7 at runtime dropped: the configured weight changed from 1 to 2"
          in rl.stderr(), "the dropped weight is not logged")
    check(server_json(sock, "app", a_key)["admin"] == "drain", "drain lost on the 2nd reload")


def raw_query(path, data, timeout=5):
    """data as sent, on one new connection to the stats socket; the whole
    answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(data)
        return recv_to_eof(s).decode()
    finally:
        s.close()


@case("control_reads_exactly_what_was_sent", per_io=False)
def control_exact(ctx):
    """A NUL, CR or other control byte inside a command line refuses it
    (before, 'set server web/s2\\0junk state drain' drained s2); lines
    sent together are each answered in order, a write among them done;
    what follows the last newline is refused, not dropped; every refusal,
    an unknown command's too, starts with 'error:'."""
    echo = start_echo(ctx)
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    cfg.start(ctx, cfg.document(stats_socket=sock, stats_socket_level="admin",
                                listeners=[cfg.listener("web", harness.free_port())],
                                backends=[cfg.backend("app", [cfg.server(echo.port, name="s2")])]))
    key = f"127.0.0.1:{echo.port}"
    for data in (b"set server app/s2\0junk state drain\n", b"set server app/s2 weight 5\0\n",
                 b"set server app/s2 state drain\rmaint\n", b"set server app/s2\x1b state drain\n",
                 b"set server app/s2 state drain\x7f\n"):
        out = raw_query(sock, data)
        check(out.startswith("error: ") and out.endswith("nothing done\n") and
              out.count("\n") == 1, f"{data!r}: {out!r}")
    srv = server_json(sock, "app", key)
    check((srv["admin"], srv["weight"]) == ("ready", 1), f"a refused line changed s2: {srv}")
    out = raw_query(sock, b"show nothing\n")
    check(out == "error: unknown command 'show nothing'; try: help\n", f"unknown: {out!r}")

    out = raw_query(sock, b"set server app/s2 state drain\nshow servers\nset server app/s2 weight 3\n")
    lines = out.splitlines()
    check(lines[0].startswith(f"ok: app/{key} state drain (was ready)"), f"first: {out!r}")
    check(any(key in line and "drain" in line for line in lines[1:-1]),
          f"show servers, second, does not show the drain: {out!r}")
    check(lines[-1] == f"ok: app/{key} weight 3 (was 1, configured 1)", f"third: {out!r}")
    srv = server_json(sock, "app", key)
    check((srv["admin"], srv["weight"]) == ("drain", 3), f"three lines in one: {srv}")

    out = raw_query(sock, b"set server app/s2 state ready\nset server app/s2 weight 1")
    check(out == f"ok: app/{key} state ready (was drain); 0 open connections continue\n"
                 "error: 'set server app/s2 weight 1' does not end in a newline; not done\n",
          f"a cut second line: {out!r}")
    check(server_json(sock, "app", key)["weight"] == 3, "the cut line was done")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5)
    c.connect(sock)
    c.sendall(b"set server app/s2 weight 2")
    c.shutdown(socket.SHUT_WR)  # the end of the request, with no newline
    out = recv_to_eof(c).decode()
    c.close()
    check(out == "error: 'set server app/s2 weight 2' does not end in a newline; not done\n",
          f"a line cut by the end of the request: {out!r}")
    check(server_json(sock, "app", key)["weight"] == 3, "the cut line was done")


@case("control_shutdown_sessions_over_1000_servers_keeps_ready_answered", per_io=False,
      budget=90)
def control_shutdown_many(ctx):
    """shutdown sessions over a name that stands for 1,000 servers is one
    round to both workers at once: every connection to any of them is
    reset (before: only the first 64 servers, one worker and one server
    at a time, each waiting for a tick), and /ready, asked all along on
    the admin port, is answered 200 every time. Its times are noted."""
    echo = start_echo(ctx, host="0.0.0.0")
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    port, admin = harness.free_port(), harness.free_port()
    dns_port = harness.free_port()
    Dnsmasq(ctx, dns_port, {"fleet.internal": [f"127.2.{i // 250}.{1 + i % 250}"
                                               for i in range(1000)]})
    cfg.start(ctx, cfg.document(
        workers=2, stats_socket=sock, stats_socket_level="admin",
        admin={"listen": f"127.0.0.1:{admin}"},
        listeners=[cfg.listener("web", port)],
        backends=[cfg.backend("app", [cfg.server(f"fleet.internal:{echo.port}")],
                              resolvers=[f"127.0.0.1:{dns_port}"],
                              health_check={"mode": "off"})]))
    conns = []
    for i in range(60):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        ctx.on_cleanup(c.close)
        c.sendall(b"hi %d\n" % i)
        check(c.recv(64) == b"hi %d\n" % i, "no echo before the shutdown")
        conns.append(c)
    stop, probes = threading.Event(), []

    def probe():
        while not stop.is_set():
            began = time.monotonic()
            try:
                s = socket.create_connection(("127.0.0.1", admin), timeout=5)
                s.sendall(b"GET /ready HTTP/1.0\r\n\r\n")
                got = recv_to_eof(s)
                s.close()
            except OSError as e:
                got = repr(e).encode()
            probes.append((time.monotonic() - began, got.split(b"\r\n", 1)[0]))
    t = threading.Thread(target=probe)
    t.start()
    try:
        time.sleep(0.2)  # probes under way before the command: a pace, not a wait
        began = time.monotonic()
        out = query(sock, "shutdown sessions server app/fleet.internal")
        took = time.monotonic() - began
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    check(out == "ok: app/fleet.internal (1000 servers): 60 connections reset\n", f"{out!r}")
    for c in conns:
        c.settimeout(5)
        try:
            check(c.recv(64) == b"", "a connection to the fleet was not reset")
        except ConnectionResetError:
            pass
    check(probes and all(line == b"HTTP/1.0 200 OK" for _, line in probes),
          f"/ready during the round: {collections.Counter(line for _, line in probes)}")
    worst = max(d for d, _ in probes)
    ctx.note(f"shutdown sessions over 1000 servers in {took * 1000:.0f} ms; "
             f"{len(probes)} /ready probes, the slowest {worst * 1000:.1f} ms")


@case("control_removed_server_comes_back_fresh", per_io=False)
def control_removed_fresh(ctx):
    """A server drained, then removed from the file by a reload and added
    back by the next, starts fresh (ready), as HAProxy forgets a removed
    server's state; one kept by both reloads stays drained."""
    a, b = start_echo(ctx, "echo-a"), start_echo(ctx, "echo-b")
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    doc = cfg.document(stats_socket=sock, stats_socket_level="admin",
                       listeners=[cfg.listener("web", harness.free_port())],
                       backends=[cfg.backend("app", [a.port, b.port])])
    path = cfg.write(ctx, doc)
    rl = harness.start_relay(ctx, ["-c", path])
    a_key, b_key = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
    for key in (a_key, b_key):
        check(query(sock, f"set server app/{key} state drain").startswith("ok: "), key)

    def reloaded(n, servers):
        doc["backends"][0]["servers"] = [cfg.server(p) for p in servers]
        cfg.write(ctx, doc)
        os.kill(rl.popen.pid, signal.SIGHUP)
        harness.wait_until(lambda: stats_json(sock)["process"]["reloads"] == n, 5, "the reload")
    reloaded(1, [a.port])
    reloaded(2, [a.port, b.port])
    check(server_json(sock, "app", a_key)["admin"] == "drain", "the kept server lost its drain")
    check(server_json(sock, "app", b_key)["admin"] == "ready",
          "the server removed and added back kept its old drain")
