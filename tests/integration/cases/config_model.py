"""One configuration model: a flag and its key take the same values and get
the same messages; a reload names every start-only key it could not
change; files the loader would choke on are refused at once; thousands of
routes and servers load and route."""

import os
import selectors
import signal
import socket
import time

import harness
from harness import check
from kit import config as cfg
from kit.stats import stats_json
from kit.tls import client_hello

from .base import case, listener
from .cli import run_cli


def minimal(port, backend_port, **settings):
    return cfg.document([cfg.listener("l", port)], [cfg.backend("b", [backend_port])], **settings)


@case("config_flag_and_key_say_the_same", per_io=False)
def flag_and_key(ctx):
    """For each key, a bad value gives the same message from the file and from
    the flag (status 2, one line each); a value one takes the other takes."""
    free = harness.free_port()
    base = ["--listen", f"127.0.0.1:{free}", "--backend", "127.0.0.1:9"]
    for key, flag, value in (("workers", "--workers", "1025"),
                             ("max_connections", "--max-connections", "-1"),
                             ("accept_backlog", "--accept-backlog", "0"),
                             ("io", "--io", "kqueue"),
                             ("drain_timeout", "--drain-timeout", "soon")):
        path = cfg.write(ctx, minimal(free, 9, **{key: value}), f"{key}.yaml")
        rc_file, _, err_file = run_cli(ctx, ["-t", "-c", path])
        rc_flag, _, err_flag = run_cli(ctx, base + [flag, value])
        check(rc_file == 2 and rc_flag == 2, f"{key}: exit {rc_file} (file), {rc_flag} (flag)")
        msg_flag = err_flag.strip().split(f"{flag}: ", 1)[-1]
        check(len(err_flag.splitlines()) == 1 and err_flag.startswith(f"ringrelay: {flag}: "),
              f"{flag}: {err_flag!r}")
        check(err_file.strip().endswith(f" {key}: {msg_flag}"),
              f"{key}: the file says {err_file.strip()!r}, the flag {err_flag.strip()!r}")
    # 0 means "what the open-file limit allows" both ways.
    path = cfg.write(ctx, minimal(free, 9, max_connections=0), "zero.yaml")
    rc, _, err = run_cli(ctx, ["-t", "-c", path])
    check(rc == 0, f"max_connections: 0 refused: {err!r}")
    rc, _, err = run_cli(ctx, base + ["--max-connections", "0", "-t"])
    check(rc == 0, f"--max-connections 0 refused: {err!r}")
    rc, _, err = run_cli(ctx, ["--route", "a.b"])
    check(rc == 2 and "--route: expected NAME=ADDR:PORT" in err, f"--route a.b: {err!r}")


def write_text(ctx, name, text):
    path = os.path.join(ctx.tmpdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


@case("config_refuses_a_second_document_and_deep_nesting_fast", per_io=False)
def second_doc_and_depth(ctx):
    """'---' starts a document the relay would never read: refused with its
    line. 100,000 nested sequences (200 KB, under the size cap) are refused
    as soon as the 65th level opens instead of keeping libyaml busy. A file
    over the 4 MiB cap is refused as such. (These files are broken on
    purpose, so they are written as text.)"""
    path = write_text(ctx, "huge.yaml", "#" * (4 * 1024 * 1024) + "\n")
    rc, _, err = run_cli(ctx, ["-t", "-c", path])
    check(rc == 2 and err == f"ringrelay: {path}: larger than 4 MiB\n", f"exit {rc}: {err!r}")
    good = cfg.write(ctx, minimal(harness.free_port(), 9))
    with open(good) as f:
        text = f.read()
    path = write_text(ctx, "two.yaml", text + "---\nworkers: 2\n")
    line = text.count("\n") + 1
    rc, _, err = run_cli(ctx, ["-t", "-c", path])
    check(rc == 2 and err == f"ringrelay: {path}:{line}:1: a second YAML document (after "
                              "'---'); put the whole configuration in one\n", f"exit {rc}: {err!r}")
    for style, deep in (("flow", "listeners: " + "[" * 100000 + "]" * 100000 + "\n"),
                        ("block", "listeners:\n  " + "- " * 100000 + "x\n")):
        path = write_text(ctx, f"deep-{style}.yaml", deep)
        rc, _, err = run_cli(ctx, ["-t", "-c", path], timeout=5)
        check(rc == 2 and "nested more than 64 levels deep" in err and len(err.splitlines()) == 1,
              f"{style}: exit {rc}: {err!r}")


@case("reload_names_each_start_only_key_it_keeps", per_io=False)
def reload_start_only(ctx):
    """A reload that changes workers, io, max_connections and accept_backlog
    keeps each, one warn line per key, while the keys a reload may change
    take effect (a new listener serves) and the relay keeps serving."""
    be = listener(ctx)
    p1, p2 = harness.free_port(), harness.free_port()
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    doc = minimal(p1, be.port, workers=2, io="epoll", max_connections=100, accept_backlog=64,
                  stats_socket=sock)
    rl = cfg.start(ctx, doc)
    before = stats_json(sock)["process"]
    doc.update(workers=1, io="uring", max_connections=200, accept_backlog=128)
    doc["listeners"].append(cfg.listener("l2", p2))
    cfg.write(ctx, doc)
    os.kill(rl.pid, signal.SIGHUP)
    harness.wait_until(lambda: " applied: " in rl.stderr(), 10, "the reload to be applied")
    want = ["reload: workers: 2 -> 1 needs a restart; kept 2",
            "reload: io: epoll -> uring needs a restart; kept epoll",
            "reload: max_connections: 100 -> 200 needs a restart; kept 100",
            "reload: accept_backlog: 64 -> 128 needs a restart; kept 64"]
    log = rl.stderr()
    for line in want:
        check(log.count(line) == 1, f"missing or repeated {line!r}: {harness.tail(log)}")
    check("2 listeners" in log, f"the new listener was not applied: {harness.tail(log)}")
    after = stats_json(sock)["process"]
    for key in ("io", "workers", "max_connections"):
        check(after[key] == before[key], f"{key}: {before[key]} -> {after[key]} after reload")
    for port in (p1, p2):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"x")
        be.accept(timeout=5).close()
        c.close()
    ctx.note(f"kept workers={after['workers']} io={after['io']} "
             f"max_connections={after['max_connections']}")


class Ports:
    """n listening sockets on 127.0.0.1, watched by one selector: which one
    each connection reached, by index."""

    def __init__(self, ctx, n):
        self.sel = selectors.DefaultSelector()
        self.socks = []
        ctx.on_cleanup(self.close)
        for i in range(n):
            s = socket.socket()
            self.socks.append(s)
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, i)
        self.ports = [s.getsockname()[1] for s in self.socks]

    def take(self, count, timeout=30):
        """The indexes of the next count connections, in the order seen."""
        got, deadline = [], time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            check(left > 0, f"only {len(got)} of {count} connections reached a server")
            for key, _ in self.sel.select(min(left, 1.0)):
                try:
                    c, _ = key.fileobj.accept()
                except BlockingIOError:
                    continue
                c.close()
                got.append(key.data)
        return got

    def close(self):
        for s in self.socks:
            s.close()
        self.sel.close()


@case("config_5000_routes_and_1000_servers_route_correctly", per_io=False, budget=180)
def many_routes_and_servers(ctx):
    """A file with 5,000 SNI routes (exact and wildcard) over 30 backends and
    a default backend of 1,000 servers loads; sampled names reach their
    route's server, others the default; 1,000 connections by round robin
    reach each of the 1,000 servers exactly once."""
    n_servers, n_routes, n_route_backends = 1000, 5000, 30
    ports = Ports(ctx, n_servers + n_route_backends)
    port = harness.free_port()
    routes = [cfg.route(f"*.w{i}.example.com" if i % 5 == 0 else f"t{i}.example.com",
                        f"r{i % n_route_backends}") for i in range(n_routes)]
    backends = [cfg.backend("many", ports.ports[:n_servers], proxy_protocol="off")]
    backends += [cfg.backend(f"r{k}", [ports.ports[n_servers + k]], proxy_protocol="off")
                 for k in range(n_route_backends)]
    doc = cfg.document([cfg.listener("tenants", port, default_backend="many", routes=routes)],
                       backends, workers=1)
    path = cfg.write(ctx, doc, "tenants.yaml")
    rc, _, err = run_cli(ctx, ["-t", "-c", path], timeout=30)
    check(rc == 0, f"-t: exit {rc}: {err!r}")
    harness.start_relay(ctx, ["-c", path], ready_timeout=30)
    samples = [0, 1, 2, 7, 1234, 2500, 4998, 4999] + list(range(13, n_routes, 97))
    for i in samples:
        name = f"www.w{i}.example.com" if i % 5 == 0 else f"t{i}.example.com"
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(client_hello(name))
        got = ports.take(1)[0]
        c.close()
        want = n_servers + i % n_route_backends
        check(got == want, f"{name}: reached server {got}, want {want} (route {i})")
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(client_hello("nobody.example.org"))
    check(ports.take(1)[0] < n_servers, "an unrouted name did not reach the default backend")
    c.close()
    seen = []
    for _ in range(n_servers):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS: the default backend
        seen += ports.take(1)
        c.close()
    check(sorted(seen) == list(range(n_servers)),
          f"round robin over 1,000 servers reached {len(set(seen))} distinct ones")
    ctx.note(f"{n_routes} routes, {len(samples)} sampled; {n_servers} servers each reached once")
