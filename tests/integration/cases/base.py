"""The test registry and the small helpers most tests share."""

import socket
import time

import harness
from harness import check
from peers.backends import Listener
from peers.proxy_header import read_proxy_header, read_proxy_header_or_reset
from peers.wire import connect, recv_exact

ALL = []


class Test:
    def __init__(self, name, fn, per_io, budget, sanitized, suite):
        self.name = name
        self.fn = fn
        self.per_io = per_io
        self.budget = budget
        self.sanitized = sanitized
        self.suite = suite


def case(name, per_io=True, budget=60, sanitized=True, suite="relay"):
    """Register fn as test name; per_io tests run once per io back end.
    budget is a hard ceiling in seconds on top of each wait's own bound.
    sanitized=False: the test is not part of the sanitizer runs (run.py
    --sanitizer does not list it), for tests of what surrounds the relay
    that take long and would show a sanitizer nothing new. suite="package":
    a test of the Debian package, run once by make test-deb (run.py --suite
    package), not with each build's integration run."""
    def register(fn):
        ALL.append(Test(name, fn, per_io, budget, sanitized, suite))
        return fn
    return register


def hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listener(ctx, host="127.0.0.1", port=0, backlog=128, timeout=10.0):
    lst = Listener(host, port, backlog, timeout)
    ctx.on_cleanup(lst.close)
    return lst


def relay(ctx, listens, backend, *extra, name="relay", wrapper=()):
    """Start the relay on listens [(host, port)] towards backend (host, port)."""
    args = []
    for host, port in listens:
        args += ["--listen", hostport(host, port)]
    if backend:
        args += ["--backend", hostport(*backend)]
    args += list(extra)
    return harness.start_relay(ctx, args, name, wrapper=wrapper)


def client(ctx, dst, src=None, timeout=5.0):
    s = connect(dst, src, timeout)
    ctx.on_cleanup(s.close)
    return s


def local(sock):
    return sock.getsockname()[:2]


def remote(sock):
    return sock.getpeername()[:2]


def roundtrip(ctx, relay_addr, backend, src=None, mode="v2"):
    """One full exchange through the relay: the backend must see a header for
    this client followed by the client's bytes, and the client its reply."""
    c = client(ctx, relay_addr, src)
    msg = b"roundtrip %d\n" % local(c)[1]
    c.sendall(msg)
    b = backend.accept(timeout=5)
    hdr, data = b"", b""
    if mode != "off":
        hdr, info, data = read_proxy_header(b)
        check(info.get("src") and info["src"][1] == local(c)[1],
              f"roundtrip: header {info} is not for client {local(c)}")
    if len(data) < len(msg):
        data += recv_exact(b, len(msg) - len(data))
    check(data == msg, f"roundtrip: backend got {data!r}, client sent {msg!r}")
    b.sendall(b"reply\n")
    check(recv_exact(c, 6) == b"reply\n", "roundtrip: reply did not arrive")
    c.close()
    b.close()
    return hdr


def served_by(backends, src, payload, port):
    """One client from src; returns the index of the backend it reached."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))
    want = c.getsockname()[1]
    try:
        c.sendall(payload)
        while True:
            got = harness.wait_until(lambda: [i for i, b in enumerate(backends) if b.pending()],
                                     5, "a backend to get the client", interval=0.005)
            for i in got:
                b = backends[i].accept(timeout=1)
                _, info, rest = read_proxy_header_or_reset(b)
                if not info or info.get("src") != (src, want):
                    b.close()  # a health check's connection, or another client's
                    continue
                if len(rest) < len(payload):
                    rest += recv_exact(b, len(payload) - len(rest))
                check(rest == payload, f"backend got {rest!r}")
                b.close()
                return i
    finally:
        c.close()


def wait_closed(sock, timeout):
    """Read until the peer ends the connection; returns (seconds, how) where how
    is 'EOF' or the error name. Data read on the way is ignored. Fails if the
    connection is still open after timeout."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return time.monotonic() - start, "EOF"
    except socket.timeout:
        raise harness.TestFailure(f"connection still open after {timeout:g}s") from None
    except OSError as e:
        return time.monotonic() - start, type(e).__name__


def hexdiff(got, want):
    """Where two byte strings first differ, for a readable failure message."""
    n = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
             min(len(got), len(want)))
    return (f"lengths got {len(got)} want {len(want)}, first difference at byte {n}: "
            f"got {got[max(0, n - 4):n + 12].hex()} want {want[max(0, n - 4):n + 12].hex()}")
