"""The access log: one line per connection, with the right reason for each
fault the test injects and the right fields (client from a PROXY header
and the direct peer, SNI and ALPN, backend and server, bytes), as JSON or
text; errors-only mode; SIGUSR1 reopens the file after a rotation."""

import os
import re
import signal
import socket
import subprocess

import harness
from harness import check
from kit import config as cfg
from kit.stats import access_log, listener_stats, query
from kit.tls import client_hello
from peers.proxy_header import (proxy_v2, read_header_then, read_proxy_header,
                                 read_proxy_header_or_reset)
from peers.wire import recv_to_eof, set_linger_reset

from .base import case, client, listener


def addr(sock):
    return "%s:%d" % sock.getsockname()[:2]


def by_client(records, want, field="client"):
    """The one line whose field is the address want ("ip:port")."""
    found = [r for r in records if r[field] == want]
    check(len(found) == 1, f"{len(found)} lines for {want}: {records}")
    return found[0]


def accept_client(lst, src_ip):
    """The backend connection carrying src_ip in its PROXY header, skipping
    others (a refused client's connect may have reached the backend)."""
    while True:
        b = lst.accept()
        _, info, rest = read_proxy_header_or_reset(b)
        if info and info.get("src", ("",))[0] == src_ip:
            return b, rest
        b.close()


def settle(rl, sock):
    """Waits until the relay has ended sock's connection (it reads EOF)."""
    sock.settimeout(5)
    try:
        recv_to_eof(sock)
    except OSError:
        pass


@case("access_log_reasons_and_fields", budget=90)
def reasons(ctx):
    """Every way a connection ends, each from a real fault, logged as JSON
    with its reason; the PROXY header's client beside the direct peer; SNI
    and ALPN from the ClientHello."""
    log = os.path.join(ctx.tmpdir, "access.log")
    be = listener(ctx)
    sink = listener(ctx)  # behind the PROXY listener
    held = listener(ctx)
    blackhole = socket.socket()
    ctx.on_cleanup(blackhole.close)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    client(ctx, blackhole.getsockname())  # fills its accept queue: SYNs are dropped
    dead = harness.free_port()
    ports = {n: harness.free_port() for n in ("plain", "dead", "slow", "idle", "pp", "tls",
                                              "single")}
    listeners = [
        cfg.listener("plain", ports["plain"], default_backend="be"),
        cfg.listener("dead", ports["dead"], default_backend="refuse"),
        cfg.listener("slow", ports["slow"], default_backend="blackhole"),
        cfg.listener("idle", ports["idle"], default_backend="idler"),
        cfg.listener("pp", ports["pp"], default_backend="sink", proxy_protocol_in="v2",
                     trusted_sources=["127.0.0.1/32"], header_timeout="300ms"),
        cfg.listener("tls", ports["tls"], default_backend="be", peek_timeout="300ms",
                     routes=[cfg.route("api.example.com", "be")]),
        cfg.listener("single", ports["single"], default_backend="one")]
    backends = [
        cfg.backend("be", [be.port]),
        cfg.backend("sink", [sink.port]),
        cfg.backend("refuse", [dead], retries=0),
        cfg.backend("blackhole", [blackhole.getsockname()[1]], retries=0,
                    connect_timeout="300ms"),
        cfg.backend("idler", [be.port], idle_timeout="300ms"),
        cfg.backend("one", [cfg.server(held.port, max_connections=1)])]
    rl = cfg.start(ctx, cfg.document(listeners, backends, drain_timeout="300ms",
                                     access_log={"path": log, "format": "json"}))
    want = {}

    def to(name, src=None):
        return client(ctx, ("127.0.0.1", ports[name]), src)


    # The client ends first.
    c = to("plain")
    c.sendall(b"a")
    b = be.accept()
    read_header_then(b, b"a")
    c.shutdown(socket.SHUT_WR)
    check(b.recv(10) == b"", "backend did not see the FIN")
    b.close()
    settle(rl, c)
    want["client_closed"] = addr(c)
    # The backend ends first.
    c = to("plain")
    c.sendall(b"bb")
    b = be.accept()
    read_header_then(b, b"bb")
    b.sendall(b"bye")
    b.close()
    check(recv_to_eof(c) == b"bye", "the backend's last bytes")
    want["backend_closed"] = addr(c)
    c.close()
    # The client resets.
    c = to("plain")
    c.sendall(b"c")
    b = be.accept()
    read_header_then(b, b"c")
    want["client_reset"] = addr(c)
    set_linger_reset(c)
    c.close()
    b.settimeout(5)
    try:
        recv_to_eof(b)
    except OSError:
        pass
    b.close()
    # The backend resets.
    c = to("plain")
    c.sendall(b"d")
    b = be.accept()
    read_header_then(b, b"d")
    set_linger_reset(b)
    b.close()
    settle(rl, c)
    want["backend_reset"] = addr(c)
    # Connect refused; connect timed out; idle.
    for name, reason in (("dead", "connect_failed"), ("slow", "connect_timeout")):
        c = to(name)
        settle(rl, c)
        want[reason] = addr(c)
    c = to("idle")
    c.sendall(b"i")
    b = be.accept()
    read_header_then(b, b"i")
    settle(rl, c)
    b.close()
    want["idle_timeout"] = addr(c)
    # Inbound PROXY headers: none in time, something else, from an untrusted client.
    c = to("pp")
    settle(rl, c)
    want["header_timeout"] = addr(c)
    c = to("pp")
    c.sendall(b"GET / HTTP/1.1\r\n\r\n")
    settle(rl, c)
    want["bad_header"] = addr(c)
    c = to("pp", "127.0.0.2")
    c.sendall(proxy_v2(("192.0.2.8", 4000), ("127.0.0.1", ports["pp"])))
    settle(rl, c)
    want["untrusted_header"] = addr(c)
    # A trusted header naming the client: logged as client, the hop as peer.
    proxied = to("pp")
    addr_proxied = addr(proxied)
    proxied.sendall(proxy_v2(("192.0.2.9", 5555), ("127.0.0.1", ports["pp"])) + b"p")
    b, rest = accept_client(sink, "192.0.2.9")
    check(rest + (b"" if rest else b.recv(1)) == b"p", "the proxied client's byte")
    b.close()
    settle(rl, proxied)
    # No ClientHello in time; then one with SNI and ALPN.
    c = to("tls")
    settle(rl, c)
    want["peek_timeout"] = addr(c)
    tls = to("tls")
    addr_tls = addr(tls)
    tls.sendall(client_hello("api.example.com", ["h2", "http/1.1"]))
    b = be.accept()
    read_proxy_header(b)
    b.close()
    settle(rl, tls)
    # An ALPN name a client made up: bytes JSON must escape (a space, a
    # quote, DEL), and still one object json.loads reads.
    odd = to("tls")
    addr_odd = addr(odd)
    odd.sendall(client_hello("api.example.com", ['x y"\x7f']))
    b = be.accept()
    read_proxy_header(b)
    b.close()
    settle(rl, odd)
    # The only server is full.
    first = to("single")
    first.sendall(b"1")
    h = held.accept()
    read_header_then(h, b"1")
    c = to("single")
    settle(rl, c)
    want["no_server"] = addr(c)
    # Still open when SIGTERM's drain runs out: reset.
    want["stopped"] = addr(first)
    rl.finish(signal.SIGTERM)

    records = access_log(log, "json")
    for reason, sock in want.items():
        rec = by_client(records, sock)
        check(rec["end"] == reason, f"{reason}: logged {rec['end']}: {rec}")
    rec = by_client(records, want["client_closed"])
    check(rec["listener"] == "plain" and rec["backend"] == "be" and
          rec["server"] == f"127.0.0.1:{be.port}", f"names: {rec}")
    check(rec["from_client"] == 1 and rec["from_server"] == 0, f"bytes: {rec}")
    check(isinstance(rec["connect_ms"], float) and rec["peer"] is None, f"fields: {rec}")
    rec = by_client(records, want["backend_closed"])
    check(rec["from_client"] == 2 and rec["from_server"] == 3 and
          isinstance(rec["first_byte_ms"], float), f"bytes: {rec}")
    rec = by_client(records, want["connect_failed"])
    check(rec["connect_ms"] is None and rec["server"] == f"127.0.0.1:{dead}", f"{rec}")
    rec = by_client(records, addr_proxied, "peer")
    check(rec["client"] == "192.0.2.9:5555" and rec["end"] == "backend_closed", f"proxied: {rec}")
    rec = by_client(records, addr_tls)
    check(rec["sni"] == "api.example.com" and rec["alpn"] == "h2", f"tls: {rec}")
    rec = by_client(records, addr_odd)
    check(rec["alpn"] == 'x y"\x7f', f"escaped alpn: {rec}")
    check(all(r["id"].count("-") == 1 and r["time"].endswith("Z") for r in records), "ids, times")
    # Each reason's connection, plus the proxied one and the two TLS ones.
    check(len(records) == len(want) + 3, f"{len(records)} lines for {len(want) + 3} connections")
    ctx.note(f"{len(want)} reasons, each from its fault")


@case("access_log_text_errors_only_and_reopen")
def text_and_reopen(ctx):
    """Text lines; mode errors skips clean ends; after the file is moved,
    SIGUSR1 makes the relay write to a new one."""
    log = os.path.join(ctx.tmpdir, "access.log")
    be = listener(ctx)
    dead = harness.free_port()
    port, bad = harness.free_port(), harness.free_port()
    rl = cfg.start(ctx, cfg.document(
        [cfg.listener("web", port, default_backend="be"),
         cfg.listener("bad", bad, default_backend="refuse")],
        [cfg.backend("be", [be.port]), cfg.backend("refuse", [dead], retries=0)],
        access_log={"path": log, "mode": "errors"}))

    def clean():
        c = client(ctx, ("127.0.0.1", port))
        c.sendall(b"x")
        b = be.accept()
        read_header_then(b, b"x")
        b.close()
        settle(rl, c)
        return c

    def failed():
        c = client(ctx, ("127.0.0.1", bad))
        settle(rl, c)
        return addr(c)

    clean()
    f1 = failed()
    harness.wait_until(lambda: harness.read_text(log).count("\n") >= 1, 5, "the first line")
    os.rename(log, log + ".1")
    rl.popen.send_signal(signal.SIGUSR1)
    harness.wait_until(lambda: "access log " + log + " reopened" in rl.stderr(), 5,
                       "the reopen to be logged")
    f2 = failed()
    clean()
    harness.wait_until(lambda: os.path.exists(log) and harness.read_text(log).count("\n") >= 1,
                       5, "a line in the new file")
    rl.finish()
    old, new = access_log(log + ".1", "text"), access_log(log, "text")
    check(len(old) == 1 and len(new) == 1, f"lines: {old} / {new}")
    rec = by_client(old, f1)
    check(rec["end"] == "connect_failed" and rec["listener"] == "bad" and
          rec["backend"] == "refuse" and rec["connect_ms"] == "-", f"line: {rec}")
    check(by_client(new, f2)["end"] == "connect_failed", f"new file: {new}")
    text = harness.read_text(log + ".1")
    for key in ("id=", "client=", "peer=-", "sni=-", "alpn=-", "duration_ms=",
                "from_client=0", "from_server=0", "end=connect_failed"):
        check(key in text, f"{key} missing: {text}")


def documented_end_reasons(text):
    """The reason names in README.md's generated table."""
    block = text.split("<!-- generated by make docs from src/stats.c: end reasons -->")[1]
    block = block.split("<!-- end of generated end reasons -->")[0].split("|---|---|---|")[1]
    return [m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", block, re.M)]


@case("end_reasons_documented_from_the_code", per_io=False)
def end_reasons_documented(ctx):
    """README.md's and the man page's lists of end reasons are the code's
    own (docgen --check); they name exactly what a running relay counts and
    what its Prometheus help text lists; and a list edited by hand is caught
    and made right again by docgen."""
    docgen = os.path.join(harness.REPO, "build", "tools", "docgen")
    readme = os.path.join(harness.REPO, "README.md")
    man = os.path.join(harness.REPO, "man", "ringrelay.8")
    p = subprocess.run([docgen, "--check", readme, man], capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0, f"docgen --check: {p.stderr}")

    sock = os.path.join(ctx.tmpdir, "stats.sock")
    cfg.start(ctx, cfg.document([cfg.listener("web", harness.free_port())],
                                [cfg.backend("app", [harness.free_port()])], stats_socket=sock))
    counted = list(listener_stats(sock, "web")["ends"])
    text = harness.read_text(readme)
    documented = documented_end_reasons(text)
    check(documented == counted, f"README lists {documented}, the relay counts {counted}")
    help_line = next(ln for ln in query(sock, "show metrics").splitlines()
                     if ln.startswith("# HELP ringrelay_listener_connections_ended_total"))
    check(re.findall(r"[a-z_]+(?=[,.])", help_line.split(":", 1)[1]) == counted,
          f"help text: {help_line}")

    drifted = os.path.join(ctx.tmpdir, "README.md")
    with open(drifted, "w") as f:
        f.write(text.replace(f"| `{counted[-1]}` |", "| `gone_away` |"))
    p = subprocess.run([docgen, "--check", drifted], capture_output=True, text=True, timeout=30)
    check(p.returncode == 1 and "differ from stats_end[]" in p.stderr,
          f"a hand-edited list passed: {p.returncode} {p.stderr}")
    p = subprocess.run([docgen, drifted], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and harness.read_text(drifted) == text,
          f"docgen did not restore the list: {p.returncode} {p.stderr}")


@case("access_log_reopens_on_sigusr1_while_draining", per_io=False)
def reopen_draining(ctx):
    """SIGUSR1 reopens the access log in every phase of the main loop,
    a drain included (before, the drain's own loop swallowed it, and the
    drained connections' lines went to the rotated file); a SIGHUP then
    is logged as ignored, not taken."""
    log = os.path.join(ctx.tmpdir, "access.log")
    be = listener(ctx)
    port = harness.free_port()
    rl = cfg.start(ctx, cfg.document(
        [cfg.listener("web", port)], [cfg.backend("be", [be.port])],
        drain_timeout="30s", access_log={"path": log}))
    first = client(ctx, ("127.0.0.1", port))
    first.sendall(b"a")
    b = be.accept()
    read_header_then(b, b"a")
    b.close()
    settle(rl, first)
    first.close()
    harness.wait_until(lambda: harness.read_text(log).count("\n") == 1, 5, "the first line")
    held = client(ctx, ("127.0.0.1", port))
    held_addr = addr(held)
    held.sendall(b"b")
    kept = be.accept()
    read_header_then(kept, b"b")
    rl.popen.send_signal(signal.SIGTERM)
    harness.wait_until(lambda: "SIGTERM: draining" in rl.stderr(), 10, "the drain")
    os.rename(log, log + ".1")
    rl.popen.send_signal(signal.SIGUSR1)
    harness.wait_until(lambda: "access log " + log + " reopened" in rl.stderr(), 5,
                       "the reopen during the drain")
    rl.popen.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: "Hangup while draining: ignored" in rl.stderr(), 5,
                       "the SIGHUP to be named as ignored")
    check(rl.alive(), "the relay stopped draining")
    kept.close()  # the last connection ends: the drain is done
    settle(rl, held)
    held.close()
    rl.exited(20)
    old, new = access_log(log + ".1", "text"), access_log(log, "text")
    check(len(old) == 1 and len(new) == 1, f"lines: {old} / {new}")
    check(by_client(new, held_addr)["end"] == "backend_closed", f"the drained one: {new}")
