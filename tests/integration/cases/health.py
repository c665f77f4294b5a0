"""Health checks off the data path: tls checks catch a listener without
proxy_protocol, tcp checks follow a server going away and coming back, a
server that accepts and never answers is timed out, connect failures mark
a server down (passive), and with every server down clients are refused at
once."""

import collections
import socket
import threading
import time

import harness
from harness import check
from kit import config as cfg
from kit.tls import expect_body, https_get
from peers.daemons import Nginx
from peers.helper import start_echo
from peers.wire import recv_exact

from .base import case, client, listener, served_by, wait_closed
from .cli import run_cli


def one_listener(port, backend, workers=1):
    """A relay with one listener l on port and its one backend."""
    return cfg.document(workers=workers, listeners=[cfg.listener("l", port)], backends=[backend])


def checks(mode, **settings):
    """A health_check that notices at once: every 100 ms, a 300 ms timeout,
    one result to go up or down."""
    return {"mode": mode, "interval": "100ms", "timeout": "300ms", "rise": 1, "fall": 1,
            **settings}


@case("health_tls_takes_out_a_listener_without_proxy_protocol", budget=90)
def health_tls(ctx):
    """Two nginx servers, one without proxy_protocol: the tls check (LOCAL
    header, then a handshake) fails on it with nginx's 400 quoted, and every
    client is then served by the other."""
    good = Nginx(ctx, ctx.session_dir, name="nginx-good")
    bad = Nginx(ctx, ctx.session_dir, proxy_protocol=False, name="nginx-bad")
    port = harness.free_port()
    rl = cfg.start(ctx, one_listener(port, cfg.backend(
        "kong", [bad.port4, good.port4], health_check=checks("tls"), sni="localhost")))
    harness.wait_until(lambda: f"server 127.0.0.1:{bad.port4} is down" in rl.stderr(), 5,
                       "the tls check to take the bad server down")
    line = next(ln for ln in rl.stderr().splitlines() if "is down" in ln)
    check('"HTTP/1.1 400 Bad Request"' in line, f"the reason is not quoted: {line}")
    check(f"server 127.0.0.1:{good.port4} is down" not in rl.stderr(), "the good one went down")
    for src in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
        status, body, _ = https_get(ctx, ("127.0.0.1", port), src)
        expect_body(status, body, src, "through the healthy server")


@case("health_tcp_down_and_back")
def health_tcp(ctx):
    """A server that stops listening is taken down, its clients go to the
    other; when it listens again it is brought back."""
    a, b = listener(ctx), listener(ctx)
    a_port = a.port
    port = harness.free_port()
    rl = cfg.start(ctx, one_listener(port, cfg.backend(
        "x", [a_port, b.port], health_check=checks("tcp"))))
    a.close()
    harness.wait_until(lambda: f"server 127.0.0.1:{a_port} is down" in rl.stderr(), 5,
                       "the tcp check to take the server down")
    for _ in range(4):
        check(served_by([b], "127.0.0.2", b"t", port) == 0, "not served by the live server")
    again = listener(ctx, port=a_port)
    harness.wait_until(lambda: f"server 127.0.0.1:{a_port} is up" in rl.stderr(), 5,
                       "the tcp check to bring the server back")
    hits = [served_by([again, b], "127.0.0.2", b"u", port) for _ in range(4)]
    check(hits.count(0) == 2, f"after its return the server got {hits.count(0)} of 4: {hits}")


@case("health_tls_times_out_a_silent_server")
def health_silent(ctx):
    """A server that accepts and never answers fails the tls check by its
    timeout."""
    silent = listener(ctx)  # accepts (the queue thread) and never writes
    live = listener(ctx)
    port = harness.free_port()
    rl = cfg.start(ctx, one_listener(port, cfg.backend(
        "x", [silent.port, live.port], health_check=checks("tls"))))
    harness.wait_until(lambda: f"server 127.0.0.1:{silent.port} is down" in rl.stderr(), 5,
                       "the tls check to time out")
    check("no answer within 300 ms" in rl.stderr(), "the timeout is not the reason given")


@case("health_passive_connect_failures")
def health_passive(ctx):
    """Checks far apart (1h): connect failures alone take a refusing server
    down after fall of them; retries serve every client meanwhile."""
    live = listener(ctx)
    dead = harness.free_port()
    port = harness.free_port()
    rl = cfg.start(ctx, one_listener(port, cfg.backend(
        "x", [dead, live.port], retries=1,
        health_check={"mode": "tcp", "interval": "1h", "rise": 1, "fall": 2})))
    for _ in range(6):
        check(served_by([live], "127.0.0.2", b"p", port) == 0, "not served")
    harness.wait_until(lambda: "2 connects failed in a row" in rl.stderr(), 5,
                       "connect failures to take the server down")
    rl.finish()
    check(rl.stderr().count("; trying another server") <= 3,
          "connects kept going to a server marked down")


@case("health_all_down_refuses_at_once")
def health_all_down(ctx):
    """The only server is down: clients are closed at once, with a line that
    says why, rather than left waiting."""
    gone = listener(ctx)
    gone_port = gone.port
    gone.close()
    port = harness.free_port()
    rl = cfg.start(ctx, one_listener(port, cfg.backend("x", [gone_port],
                                                       health_check=checks("tcp"))))
    harness.wait_until(lambda: "is down" in rl.stderr(), 5, "the server to be marked down")
    c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
    took, how = wait_closed(c, 2)
    check("no server to take the connection" in rl.stderr(), "no line says why")
    ctx.note(f"client closed after {took:.2f}s ({how})")


@case("health_backend_killed_mid_test")
def health_killed(ctx):
    """Two echo backends with proxy_local checks (a v2 LOCAL header, as AWS
    NLB sends): one is killed while clients talk through it; its clients'
    connections end, it is taken down, and new clients all reach the other."""
    import signal as sig
    e1 = start_echo(ctx, "echo1")
    p1, p2 = e1.port, start_echo(ctx, "echo2").port
    port = harness.free_port()
    rl = cfg.start(ctx, one_listener(port, cfg.backend(
        "x", [p1, p2], retries=1, health_check=checks("proxy_local"))))
    talkers = []
    for k in range(4):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.2")
        c.sendall(b"ping%d" % k)
        check(recv_exact(c, 5) == b"ping%d" % k, "no echo before the kill")
        talkers.append(c)
    e1.popen.send_signal(sig.SIGKILL)
    e1.wait(5)
    harness.wait_until(lambda: f"server 127.0.0.1:{p1} is down" in rl.stderr(), 5,
                       "the proxy_local check to take the killed server down")
    ended = 0
    for c in talkers:  # the killed server's clients end; the others still echo
        try:
            c.sendall(b"x")
            c.settimeout(5)
            ended += c.recv(1) != b"x"
        except OSError:
            ended += 1
    check(ended == 2, f"{ended} of 4 clients ended; want the 2 round robin gave the killed one")
    for k in range(6):
        c = client(ctx, ("127.0.0.1", port), "127.0.0.3")
        c.sendall(b"after%d" % k)
        check(recv_exact(c, 6) == b"after%d" % k, "a new client was not served")
        c.close()
    ctx.note(f"{ended} of 4 open clients ended with the killed server")



@case("health_default_check_is_quiet_in_nginx", per_io=False)
def health_default(ctx):
    """With no health_check mode, a backend that is sent PROXY headers is
    checked with proxy_local (a LOCAL header, then close) and one that is
    not with tcp: nginx with proxy_protocol logs no error for the checks
    (a tcp check there is "broken header" at [error] every interval), and
    --dump-config shows the mode each got. (Old main: tcp for both.)"""
    ng = Nginx(ctx, ctx.session_dir)
    port = harness.free_port()
    doc = cfg.document(listeners=[cfg.listener("l", port, default_backend="kong")], backends=[
        cfg.backend("kong", [ng.port4], health_check={"interval": "100ms", "rise": 1}),
        cfg.backend("plain", [listener(ctx).port], proxy_protocol="off",
                    health_check={"interval": "1h"})])
    path = cfg.write(ctx, doc)
    rc, out, err = run_cli(ctx, ["--dump-config", "-c", path])
    check(rc == 0, f"--dump-config: {err}")
    lines = out.splitlines()
    modes = [lines[i + 1].split(":", 1)[1].split()[0] for i, ln in enumerate(lines[:-1])
             if ln.strip() == "health_check:" and lines[i + 1].strip().startswith("mode:")]
    check(modes == ["proxy_local", "tcp"], f"default modes {modes}, want proxy_local, tcp")
    harness.start_relay(ctx, ["-c", path])
    closed = "client closed connection while SSL handshaking"
    harness.wait_until(lambda: ng.file("error.log").count(closed) >= 5, 10,
                       "five checks to reach nginx")
    errors = [ln for ln in ng.file("error.log").splitlines() if "[error]" in ln]
    check(not errors, f"nginx logged errors for the checks: {errors[:3]}")


class SilentServers:
    """A listener on 0.0.0.0:port that accepts and never answers, for many
    server addresses at once (127.3.x.y:port): it notes when each address
    was connected to, and closes what it accepted 1.5 s later."""

    def __init__(self, ctx, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen(4096)
        self.sock.settimeout(0.1)
        self.seen = collections.defaultdict(list)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()
        ctx.on_cleanup(self.close)

    def run(self):
        held = collections.deque()
        while not self.stop.is_set():
            try:
                s, _ = self.sock.accept()
                now = time.monotonic()
                self.seen[s.getsockname()[0]].append(now)
                held.append((now, s))
            except socket.timeout:
                now = time.monotonic()
            while held and now - held[0][0] > 1.5:
                held.popleft()[1].close()
        for _, s in held:
            s.close()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


@case("health_checks_1000_silent_servers_within_interval_plus_timeout", per_io=False,
      budget=90)
def health_many(ctx):
    """1,000 servers that accept and never answer, tls checks every 2 s
    with a 1 s timeout: the checks run at once, not one after the other
    (before: one blocking probe at a time, about 1,000 s a round), so each
    server is probed three times within a bounded wait; the longest gap
    between two probes of one server is noted (the schedule's bound,
    interval plus timeout, is the unit test's)."""
    port = harness.free_port()
    silent = SilentServers(ctx, port)
    addrs = [f"127.3.{i // 250}.{1 + i % 250}" for i in range(1000)]
    rl = cfg.start(ctx, one_listener(harness.free_port(), cfg.backend(
        "app", [f"{a}:{port}" for a in addrs],
        health_check={"mode": "tls", "interval": "2s", "timeout": "1s", "rise": 1, "fall": 1})))
    harness.wait_until(lambda: all(len(silent.seen[a]) >= 3 for a in addrs), 30,
                       "every server to be probed three times")
    gaps = [b - a for v in silent.seen.values() for a, b in zip(v, v[1:])]
    down = rl.stderr().count("is down: 1 checks failed in a row, the last: failed: ")
    check(down == 1000, f"{down} of the 1000 servers were taken down")
    ctx.note(f"1000 silent servers: the longest gap between two probes of one {max(gaps):.2f} s, "
             f"median {sorted(gaps)[len(gaps) // 2]:.2f} s (interval 2 s + timeout 1 s)")
