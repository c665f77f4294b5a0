"""One configuration model: a flag and its key take the same values and get
the same messages; a reload names every start-only key it could not
change; files the loader would choke on are refused at once."""

import json
import os
import signal
import socket

import harness
from harness import check

from .base import case, listener
from .cli import run_cli


def write(ctx, name, text):
    path = os.path.join(ctx.tmpdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def minimal(port, backend_port, extra=""):
    return (f"{extra}listeners:\n  - name: l\n    bind: 127.0.0.1:{port}\n"
            f"backends:\n  - name: b\n    health_check: {{ mode: off }}\n"
            f"    servers:\n      - address: 127.0.0.1:{backend_port}\n")


def stats_json(sock_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(b"show stats json\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data)


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
        path = write(ctx, f"{key}.yaml", minimal(free, 9, f"{key}: \"{value}\"\n"))
        rc_file, _, err_file = run_cli(ctx, ["-t", "-c", path])
        rc_flag, _, err_flag = run_cli(ctx, base + [flag, value])
        check(rc_file == 2 and rc_flag == 2, f"{key}: exit {rc_file} (file), {rc_flag} (flag)")
        msg_flag = err_flag.strip().split(f"{flag}: ", 1)[-1]
        check(len(err_flag.splitlines()) == 1 and err_flag.startswith(f"ringrelay: {flag}: "),
              f"{flag}: {err_flag!r}")
        check(err_file.strip().endswith(f" {key}: {msg_flag}"),
              f"{key}: the file says {err_file.strip()!r}, the flag {err_flag.strip()!r}")
    # 0 means "what the open-file limit allows" both ways.
    path = write(ctx, "zero.yaml", minimal(free, 9, "max_connections: 0\n"))
    rc, _, err = run_cli(ctx, ["-t", "-c", path])
    check(rc == 0, f"max_connections: 0 refused: {err!r}")
    rc, _, err = run_cli(ctx, base + ["--max-connections", "0", "-t"])
    check(rc == 0, f"--max-connections 0 refused: {err!r}")
    rc, _, err = run_cli(ctx, ["--route", "a.b"])
    check(rc == 2 and "--route: expected NAME=ADDR:PORT" in err, f"--route a.b: {err!r}")


@case("config_refuses_a_second_document_and_deep_nesting_fast", per_io=False)
def second_doc_and_depth(ctx):
    """'---' starts a document the relay would never read: refused with its
    line. 100,000 nested sequences (200 KB, under the size cap) are refused
    as soon as the 65th level opens instead of keeping libyaml busy."""
    free = harness.free_port()
    path = write(ctx, "two.yaml", minimal(free, 9) + "---\nworkers: 2\n")
    rc, _, err = run_cli(ctx, ["-t", "-c", path])
    check(rc == 2 and err == f"ringrelay: {path}:8:1: a second YAML document (after '---'); "
                              "put the whole configuration in one\n", f"exit {rc}: {err!r}")
    for style, text in (("flow", "listeners: " + "[" * 100000 + "]" * 100000 + "\n"),
                        ("block", "listeners:\n  " + "- " * 100000 + "x\n")):
        path = write(ctx, f"deep-{style}.yaml", text)
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
    start = (f"workers: 2\nio: epoll\nmax_connections: 100\naccept_backlog: 64\n"
             f"stats_socket: {sock}\n")
    path = write(ctx, "ringrelay.yaml", minimal(p1, be.port, start))
    rl = harness.start_relay(ctx, ["-c", path])
    before = stats_json(sock)["process"]
    changed = ("workers: 1\nio: uring\nmax_connections: 200\naccept_backlog: 128\n"
               f"stats_socket: {sock}\n")
    second = f"  - name: l2\n    bind: 127.0.0.1:{p2}\n"
    text = minimal(p1, be.port, changed).replace("backends:\n", second + "backends:\n", 1)
    write(ctx, "ringrelay.yaml", text)
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
        b = be.accept(timeout=5)
        b.close()
        c.close()
    ctx.note(f"kept workers={after['workers']} io={after['io']} "
             f"max_connections={after['max_connections']}")
