"""The access log: one line per connection, with the right reason for each
fault the test injects and the right fields (client from a PROXY header
and the direct peer, SNI and ALPN, backend and server, bytes), as JSON or
text; errors-only mode; SIGUSR1 reopens the file after a rotation."""

import json
import os
import signal
import socket

import harness
import peers
from harness import check

from .base import case, client, listener
from .pools import backend_yaml, write_config
from .routes import client_hello


def read_lines(path, fmt):
    lines = [line for line in harness.read_text(path).splitlines() if line]
    if fmt == "json":
        return [json.loads(line) for line in lines]
    out = []
    for line in lines:
        when, *fields = line.split(" ")
        rec = {"time": when}
        for f in fields:
            k, _, v = f.partition("=")
            rec[k] = v
        out.append(rec)
    return out


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
        _, info, rest = peers.read_proxy_header_or_reset(b)
        if info and info.get("src", ("",))[0] == src_ip:
            return b, rest
        b.close()


def settle(rl, sock):
    """Waits until the relay has ended sock's connection (it reads EOF)."""
    sock.settimeout(5)
    try:
        peers.recv_to_eof(sock)
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
    lst = "".join(f"  - name: {n}\n    bind: 127.0.0.1:{p}\n    default_backend: {b}\n{x}"
                  for n, p, b, x in [
                      ("plain", ports["plain"], "be", ""),
                      ("dead", ports["dead"], "refuse", ""),
                      ("slow", ports["slow"], "blackhole", ""),
                      ("idle", ports["idle"], "idler", ""),
                      ("pp", ports["pp"], "sink", "    proxy_protocol_in: v2\n"
                       "    trusted_sources: [127.0.0.1/32]\n    header_timeout: 300ms\n"),
                      ("tls", ports["tls"], "be", "    peek_timeout: 300ms\n    routes:\n"
                       "      - { sni: api.example.com, backend: be }\n"),
                      ("single", ports["single"], "one", "")])
    rl = harness.start_relay(ctx, ["-c", write_config(
        ctx, f"access_log: {{ path: {log}, format: json }}\ndrain_timeout: 300ms\n"
             f"listeners:\n{lst}backends:\n" +
             backend_yaml("be", [f"127.0.0.1:{be.port}"]) +
             backend_yaml("sink", [f"127.0.0.1:{sink.port}"]) +
             backend_yaml("refuse", [f"127.0.0.1:{dead}"], "retries: 0") +
             backend_yaml("blackhole", [f"127.0.0.1:{blackhole.getsockname()[1]}"],
                          "retries: 0\nconnect_timeout: 300ms") +
             backend_yaml("idler", [f"127.0.0.1:{be.port}"], "idle_timeout: 300ms") +
             backend_yaml("one", [f"{{ address: 127.0.0.1:{held.port}, max_connections: 1 }}"]))])
    want = {}

    def to(name, src=None):
        return client(ctx, ("127.0.0.1", ports[name]), src)


    # The client ends first.
    c = to("plain")
    c.sendall(b"a")
    b = be.accept()
    peers.read_header_then(b, b"a")
    c.shutdown(socket.SHUT_WR)
    check(b.recv(10) == b"", "backend did not see the FIN")
    b.close()
    settle(rl, c)
    want["client_closed"] = addr(c)
    # The backend ends first.
    c = to("plain")
    c.sendall(b"bb")
    b = be.accept()
    peers.read_header_then(b, b"bb")
    b.sendall(b"bye")
    b.close()
    check(peers.recv_to_eof(c) == b"bye", "the backend's last bytes")
    want["backend_closed"] = addr(c)
    c.close()
    # The client resets.
    c = to("plain")
    c.sendall(b"c")
    b = be.accept()
    peers.read_header_then(b, b"c")
    want["client_reset"] = addr(c)
    peers.set_linger_reset(c)
    c.close()
    b.settimeout(5)
    try:
        peers.recv_to_eof(b)
    except OSError:
        pass
    b.close()
    # The backend resets.
    c = to("plain")
    c.sendall(b"d")
    b = be.accept()
    peers.read_header_then(b, b"d")
    peers.set_linger_reset(b)
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
    peers.read_header_then(b, b"i")
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
    c.sendall(peers.proxy_v2(("192.0.2.8", 4000), ("127.0.0.1", ports["pp"])))
    settle(rl, c)
    want["untrusted_header"] = addr(c)
    # A trusted header naming the client: logged as client, the hop as peer.
    proxied = to("pp")
    addr_proxied = addr(proxied)
    proxied.sendall(peers.proxy_v2(("192.0.2.9", 5555), ("127.0.0.1", ports["pp"])) + b"p")
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
    peers.read_proxy_header(b)
    b.close()
    settle(rl, tls)
    # The only server is full.
    first = to("single")
    first.sendall(b"1")
    h = held.accept()
    peers.read_header_then(h, b"1")
    c = to("single")
    settle(rl, c)
    want["no_server"] = addr(c)
    # Still open when SIGTERM's drain runs out: reset.
    want["stopped"] = addr(first)
    rl.finish(signal.SIGTERM)

    records = read_lines(log, "json")
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
    check(all(r["id"].count("-") == 1 and r["time"].endswith("Z") for r in records), "ids, times")
    # Each reason's connection, plus the proxied one and the TLS one.
    check(len(records) == len(want) + 2, f"{len(records)} lines for {len(want) + 2} connections")
    ctx.note(f"{len(want)} reasons, each from its fault")


@case("access_log_text_errors_only_and_reopen")
def text_and_reopen(ctx):
    """Text lines; mode errors skips clean ends; after the file is moved,
    SIGUSR1 makes the relay write to a new one."""
    log = os.path.join(ctx.tmpdir, "access.log")
    be = listener(ctx)
    dead = harness.free_port()
    port, bad = harness.free_port(), harness.free_port()
    rl = harness.start_relay(ctx, ["-c", write_config(
        ctx, f"access_log: {{ path: {log}, mode: errors }}\nlisteners:\n"
             f"  - name: web\n    bind: 127.0.0.1:{port}\n    default_backend: be\n"
             f"  - name: bad\n    bind: 127.0.0.1:{bad}\n    default_backend: refuse\n"
             f"backends:\n" + backend_yaml("be", [f"127.0.0.1:{be.port}"]) +
             backend_yaml("refuse", [f"127.0.0.1:{dead}"], "retries: 0"))])

    def clean():
        c = client(ctx, ("127.0.0.1", port))
        c.sendall(b"x")
        b = be.accept()
        peers.read_header_then(b, b"x")
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
    old, new = read_lines(log + ".1", "text"), read_lines(log, "text")
    check(len(old) == 1 and len(new) == 1, f"lines: {old} / {new}")
    rec = by_client(old, f1)
    check(rec["end"] == "connect_failed" and rec["listener"] == "bad" and
          rec["backend"] == "refuse" and rec["connect_ms"] == "-", f"line: {rec}")
    check(by_client(new, f2)["end"] == "connect_failed", f"new file: {new}")
    text = harness.read_text(log + ".1")
    for key in ("id=", "client=", "peer=-", "sni=-", "alpn=-", "duration_ms=",
                "from_client=0", "from_server=0", "end=connect_failed"):
        check(key in text, f"{key} missing: {text}")
