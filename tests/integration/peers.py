"""Python peers for the integration suite: PROXY header encoding and parsing,
a raw listener the tests drive by hand, and load helpers that run in their own
process (`python3 peers.py integrity-backend ...`) and report JSON on stdout."""

import argparse
import asyncio
import hashlib
import ipaddress
import json
import os
import queue
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time

PP2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PP2_CMD_PROXY = 0x21
PP2_TCP4 = 0x11
PP2_TCP6 = 0x21


def _plain_ip(ip):
    """'::ffff:1.2.3.4' -> '1.2.3.4'; anything else unchanged (scope dropped)."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    if addr.version == 6 and addr.ipv4_mapped:
        return str(addr.ipv4_mapped)
    return str(addr)


def proxy_v2(src, dst):
    """The PROXY v2 header a relay must send for a client at src that connected
    to dst; both are (ip, port). TCP4 when both are IPv4 (or v4-mapped)."""
    s, d = ipaddress.ip_address(_plain_ip(src[0])), ipaddress.ip_address(_plain_ip(dst[0]))
    if s.version == 4 and d.version == 4:
        body = s.packed + d.packed + struct.pack("!HH", src[1], dst[1])
        fam = PP2_TCP4
    else:
        s6 = s if s.version == 6 else ipaddress.IPv6Address("::ffff:" + str(s))
        d6 = d if d.version == 6 else ipaddress.IPv6Address("::ffff:" + str(d))
        body = s6.packed + d6.packed + struct.pack("!HH", src[1], dst[1])
        fam = PP2_TCP6
    return PP2_SIGNATURE + bytes([PP2_CMD_PROXY, fam]) + struct.pack("!H", len(body)) + body


def proxy_v1(src, dst):
    s, d = _plain_ip(src[0]), _plain_ip(dst[0])
    fam = "TCP4" if ipaddress.ip_address(s).version == 4 else "TCP6"
    return f"PROXY {fam} {s} {d} {src[1]} {dst[1]}\r\n".encode()


def parse_proxy_header(data):
    """Parse a PROXY v1 or v2 header at the start of data.

    Returns (consumed, info) with info a dict (version, family, src, dst), or
    (-1, None) if more bytes are needed. Raises ValueError if malformed."""
    if not data:
        return -1, None
    if data[:1] == b"\r":
        if len(data) < 16:
            return -1, None
        if data[:12] != PP2_SIGNATURE:
            raise ValueError(f"bad v2 signature {data[:12]!r}")
        length = struct.unpack("!H", data[14:16])[0]
        if len(data) < 16 + length:
            return -1, None
        cmd, fam, body = data[12], data[13], data[16:16 + length]
        info = {"version": 2, "command": cmd, "family": fam}
        if fam == PP2_TCP4 and length >= 12:
            sport, dport = struct.unpack("!HH", body[8:12])
            info["src"] = (str(ipaddress.IPv4Address(body[0:4])), sport)
            info["dst"] = (str(ipaddress.IPv4Address(body[4:8])), dport)
        elif fam == PP2_TCP6 and length >= 36:
            sport, dport = struct.unpack("!HH", body[32:36])
            info["src"] = (str(ipaddress.IPv6Address(body[0:16])), sport)
            info["dst"] = (str(ipaddress.IPv6Address(body[16:32])), dport)
        return 16 + length, info
    if data[:1] == b"P":
        end = data.find(b"\r\n")
        if end == -1:
            if len(data) > 107:
                raise ValueError("v1 header longer than 107 bytes")
            return -1, None
        parts = data[:end].decode("ascii").split(" ")
        if parts[0] != "PROXY" or len(parts) != 6:
            raise ValueError(f"bad v1 header {data[:end]!r}")
        info = {"version": 1, "family": parts[1], "src": (parts[2], int(parts[4])),
                "dst": (parts[3], int(parts[5]))}
        return end + 2, info
    raise ValueError(f"no PROXY header: {data[:16]!r}")


def read_proxy_header(sock):
    """Read one PROXY header from sock; returns (header bytes, info, bytes after it)."""
    data = b""
    while True:
        consumed, info = parse_proxy_header(data)
        if consumed >= 0:
            return data[:consumed], info, data[consumed:]
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError(f"EOF inside PROXY header after {len(data)} bytes: {data!r}")
        data += chunk


def read_proxy_header_or_reset(sock):
    """read_proxy_header, but a connection reset or closed before a whole
    header gives (b"", None, b"")."""
    try:
        return read_proxy_header(sock)
    except (ConnectionResetError, ValueError):
        return b"", None, b""


def read_header_then(sock, payload):
    """Read one PROXY header and then exactly the payload the client sent
    after it, whether they arrive together or apart; returns the header info."""
    _, info, rest = read_proxy_header(sock)
    if len(rest) < len(payload):
        rest += recv_exact(sock, len(payload) - len(rest))
    if rest != payload:
        raise ValueError(f"after the header expected {payload!r}, got {rest!r}")
    return info


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_to_eof(sock, limit=1 << 30):
    """Read until EOF; returns the bytes. A reset propagates as ConnectionResetError."""
    buf = bytearray()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise ValueError(f"more than {limit} bytes before EOF")


def connect(dst, src=None, timeout=5.0):
    """A TCP connection to dst (ip, port), from source address src if given."""
    family = socket.AF_INET6 if ":" in dst[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if src:
            s.bind((src, 0))
        s.connect(dst)
    except BaseException:
        s.close()
        raise
    return s


def set_linger_reset(sock):
    """Make close() send a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Listener:
    """A raw TCP listener; a thread accepts and queues the connections so a
    test can take them in order with a bounded wait."""

    def __init__(self, host="127.0.0.1", port=0, backlog=128, timeout=10.0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.addr = self.sock.getsockname()[:2]
        self.port = self.addr[1]
        self.timeout = timeout
        self.conns = queue.Queue()
        self.accepted = []
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.settimeout(self.timeout)
            self.accepted.append(c)
            self.conns.put(c)

    def accept(self, timeout=5.0):
        try:
            return self.conns.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no connection reached the backend within {timeout:g}s") from None

    def pending(self):
        return self.conns.qsize()

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.accepted:
            c.close()


class PlainEcho:
    """A threaded echo server without PROXY header handling (for behind HAProxy)."""

    def __init__(self, host="127.0.0.1"):
        self.listener = Listener(host)
        self.port = self.listener.port
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.listener.closed:
            try:
                c = self.listener.accept(timeout=0.5)
            except TimeoutError:
                continue
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.listener.close()


class Streamer:
    """Sends and receives on sock at the same time until each direction ends,
    recording how (EOF, error name) and when; used to watch a reset propagate."""

    def __init__(self, sock, chunk=65536):
        self.sock = sock
        self.block = os.urandom(chunk)
        self.sent = 0
        self.received = 0
        self.send_end = None  # (monotonic time, outcome)
        self.recv_end = None
        self.stopping = False
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._recv, daemon=True)]
        for t in self.threads:
            t.start()

    def _send(self):
        try:
            while not self.stopping:
                self.sock.sendall(self.block)
                self.sent += len(self.block)
            outcome = "stopped"
        except OSError as e:
            outcome = type(e).__name__
        self.send_end = (time.monotonic(), outcome)

    def _recv(self):
        try:
            while True:
                data = self.sock.recv(1 << 18)
                if not data:
                    outcome = "EOF"
                    break
                self.received += len(data)
        except OSError as e:
            outcome = type(e).__name__
        self.recv_end = (time.monotonic(), outcome)

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return all(not t.is_alive() for t in self.threads)


# ---------------------------------------------------------------------------
# Load helpers, each run in its own process.

def _random_block(size):
    return memoryview(os.urandom(size))


def _chunk_size(rng, max_chunk):
    """Log-uniform in [1, max_chunk]: many small writes and some large ones."""
    return min(max_chunk, int(2 ** rng.uniform(0, max_chunk.bit_length())))


class _Stream:
    """One connection moving nbytes out (random chunk sizes, random slices
    of block) while reading to EOF (random read sizes), both sides hashed;
    driven by _pump_all() with the socket non-blocking."""

    def __init__(self, sock, nbytes, block, max_chunk, seed, already=b""):
        self.sock, self.nbytes, self.block, self.max_chunk = sock, nbytes, block, max_chunk
        self.send_rng, self.recv_rng = random.Random(seed), random.Random(seed + 1)
        self.sent, self.sent_sha, self.pending = 0, hashlib.sha256(), memoryview(b"")
        self.got, self.got_sha = len(already), hashlib.sha256(already)
        self.view = memoryview(bytearray(max_chunk))
        self.sending, self.receiving = True, True
        self.result = {}

    def events(self):
        return ((selectors.EVENT_WRITE if self.sending else 0) |
                (selectors.EVENT_READ if self.receiving else 0))

    def on_write(self):
        try:
            if not self.pending:
                size = min(_chunk_size(self.send_rng, self.max_chunk),
                           self.nbytes - self.sent)
                off = self.send_rng.randrange(0, len(self.block) - size)
                self.pending = self.block[off:off + size]
            n = self.sock.send(self.pending)
            self.sent_sha.update(self.pending[:n])
            self.pending, self.sent = self.pending[n:], self.sent + n
            if self.sent == self.nbytes:
                self.sock.shutdown(socket.SHUT_WR)
                self.sending = False
                self.result.update(sent=self.sent, sent_sha=self.sent_sha.hexdigest())
        except BlockingIOError:
            pass
        except Exception as e:  # reported to the driver, which fails the test
            self.result["send_error"] = repr(e)
            self.sending = False

    def on_read(self):
        try:
            n = self.sock.recv_into(self.view, _chunk_size(self.recv_rng, self.max_chunk))
        except BlockingIOError:
            return
        except Exception as e:
            self.result["recv_error"] = repr(e)
            self.receiving = False
            return
        if n == 0:
            self.receiving = False
            self.result.update(recv=self.got, recv_sha=self.got_sha.hexdigest())
            return
        self.got_sha.update(self.view[:n])
        self.got += n


def _pump_all(streams, timeout):
    """Runs every stream to its end in this one thread; a stream that makes
    no progress while nothing else does for timeout seconds fails."""
    sel = selectors.DefaultSelector()
    for st in streams:
        st.sock.setblocking(False)
        sel.register(st.sock, st.events(), st)
    live = len(streams)
    while live:
        ready = sel.select(timeout)
        if not ready:
            for key in list(sel.get_map().values()):
                key.data.result["timeout_error"] = f"no progress in {timeout}s"
            break
        for key, ev in ready:
            st = key.data
            if ev & selectors.EVENT_READ and st.receiving:
                st.on_read()
            if ev & selectors.EVENT_WRITE and st.sending:
                st.on_write()
            want = st.events()
            if not want:
                sel.unregister(st.sock)
                live -= 1
            elif want != key.events:
                sel.modify(st.sock, want, st)
    sel.close()


def _emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def integrity_backend(args):
    """Accept args.conns connections and strip each one's PROXY header, then
    on all of them at once send args.bytes while receiving to EOF. Results
    are keyed by the client's port as the header gave it."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(args.conns)
    lsock.settimeout(args.timeout)
    block = _random_block(args.block)
    _emit({"port": lsock.getsockname()[1]})
    results, streams = {}, []
    for n in range(args.conns):
        try:
            c, _ = lsock.accept()
        except OSError as e:
            results["accept_error"] = repr(e)
            break
        c.settimeout(args.timeout)
        try:
            _, info, rest = read_proxy_header(c)
        except Exception as e:
            results[f"bad{n}"] = {"header_error": repr(e)}
            c.close()
            continue
        st = _Stream(c, args.bytes, block, args.max_chunk, 1000 + n, rest)
        st.result.update(src=info.get("src"), dst=info.get("dst"))
        st.key = str(info.get("src", ("?", n))[1])
        streams.append(st)
    _pump_all(streams, args.timeout)
    for n, st in enumerate(streams):
        key = st.key
        if key in results:  # two clients on one port: the test is broken, say so
            st.result["port_reuse_error"] = f"client port {key} seen twice"
            key = f"{key}#{n}"
        results[key] = st.result
        st.sock.close()
    _emit({"results": results})


def integrity_client(args):
    """Open args.conns connections to the relay, then on all of them at once
    send args.bytes while receiving to EOF. Results are keyed by local
    port."""
    host, port = args.target.rsplit(":", 1)
    block = _random_block(args.block)
    results, streams = {}, []
    for n in range(args.conns):
        try:
            s = connect((host, int(port)), args.source, args.timeout)
        except Exception as e:
            results[f"connect{n}"] = {"connect_error": repr(e)}
            continue
        st = _Stream(s, args.bytes, block, args.max_chunk, 2000 + n)
        st.key = str(s.getsockname()[1])  # now: a reset socket gives its port up
        streams.append(st)
    _pump_all(streams, args.timeout)
    # Closed only once every connection is done: a port freed early (the
    # side closing second keeps no TIME_WAIT) could be taken by a later
    # connection, and the backend, which knows clients by port, would mix
    # the two up.
    for n, st in enumerate(streams):
        key = st.key
        if key in results:
            st.result["port_reuse_error"] = f"local port {key} seen twice"
            key = f"{key}#{n}"
        results[key] = st.result
    for st in streams:
        st.sock.close()
    _emit({"results": results})


async def _read_header_async(reader):
    data = b""
    while True:
        consumed, info = parse_proxy_header(data)
        if consumed >= 0:
            return info, data[consumed:]
        chunk = await reader.read(4096)
        if not chunk:
            raise ValueError("EOF inside PROXY header")
        data += chunk


def echo_backend(args):
    """Strip the PROXY header, echo everything until EOF, then close. Runs until
    SIGTERM, then prints its counters."""
    stats = {"accepted": 0, "headers": 0, "bad_headers": 0, "open": 0, "max_open": 0}

    async def handle(reader, writer):
        stats["accepted"] += 1
        stats["open"] += 1
        stats["max_open"] = max(stats["max_open"], stats["open"])
        try:
            info, rest = await _read_header_async(reader)
            stats["headers"] += 1 if info.get("src") else 0
            if rest:
                writer.write(rest)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            writer.close()
        except ValueError:
            stats["bad_headers"] += 1
            writer.close()
        except OSError:
            writer.close()
        finally:
            stats["open"] -= 1

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        _emit({"port": server.sockets[0].getsockname()[1]})
        await stop.wait()
        server.close()
        _emit({"stats": stats})

    asyncio.run(main())


def steady_client(args):
    """args.conns connections that each keep sending a distinct, seeded
    stream in small pieces (args.pieces of args.piece bytes, args.gap
    seconds apart) while reading the echo; reports {"connected": n} once all
    are open and, at the end, how many came back byte for byte."""
    host, port = args.target.rsplit(":", 1)
    failed = []

    async def one(n, ready):
        rng = random.Random(n)
        data = bytes(rng.getrandbits(8) for _ in range(args.piece)) * args.pieces
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), args.timeout)
        except Exception as e:
            failed.append(f"{n}: connect: {e!r}")
            ready()
            return
        ready()

        async def send():
            for k in range(args.pieces):
                writer.write(data[k * args.piece:(k + 1) * args.piece])
                await writer.drain()
                await asyncio.sleep(args.gap)
            writer.write_eof()

        try:
            sender = asyncio.create_task(send())
            echo = await asyncio.wait_for(reader.read(-1), args.timeout)
            await sender
            if echo != data:
                failed.append(f"{n}: {len(echo)} of {len(data)} bytes came back"
                              f"{'' if len(echo) != len(data) else ', different'}")
        except Exception as e:
            failed.append(f"{n}: {e!r}")
        finally:
            writer.close()

    async def main():
        opened = 0

        def ready():
            nonlocal opened
            opened += 1
            if opened == args.conns:
                _emit({"connected": opened})
        await asyncio.gather(*(one(n, ready) for n in range(args.conns)))
        _emit({"results": {"conns": args.conns, "failed": failed[:20],
                           "n_failed": len(failed)}})

    asyncio.run(main())


def churn_client(args):
    """args.total short connections, args.concurrency at a time: each sends a
    unique line, reads its echo, half-closes and waits for the relay's EOF."""
    host, port = args.target.rsplit(":", 1)
    counts = {"ok": 0, "failed": 0}
    errors = {}

    async def one(i):
        msg = b"%015d\n" % i
        reader = writer = None
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(msg)
            echo = await reader.readexactly(len(msg))
            if echo != msg:
                raise ValueError("echo mismatch")
            writer.write_eof()
            if await reader.read(1):
                raise ValueError("data after echo")
            counts["ok"] += 1
        except Exception as e:
            counts["failed"] += 1
            name = type(e).__name__
            errors[name] = errors.get(name, 0) + 1
        finally:
            if writer:
                writer.close()

    async def worker(ids):
        for i in ids:
            try:
                await asyncio.wait_for(one(i), args.timeout)
            except asyncio.TimeoutError:
                counts["failed"] += 1
                errors["Timeout"] = errors.get("Timeout", 0) + 1

    async def main():
        start = time.monotonic()
        ids = iter(range(args.total))
        tasks = [asyncio.create_task(worker(ids)) for _ in range(args.concurrency)]
        await asyncio.gather(*tasks, return_exceptions=True)
        _emit({"done": dict(counts, errors=errors, elapsed=time.monotonic() - start)})

    asyncio.run(main())


def rate_client(args):
    """Opens args.rate connections a second, each an echo round trip of a
    unique line then a half-close, until SIGTERM; then reports how many
    succeeded and how the others failed (refused, reset, ...). Prints
    {"started": n} after its first success, so a test knows it runs."""
    counts = {"ok": 0, "failed": 0}
    errors = {}
    host, port = args.target.rsplit(":", 1)

    async def one(i):
        msg = b"%015d\n" % i
        writer = None
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(msg)
            if await reader.readexactly(len(msg)) != msg:
                raise ValueError("echo mismatch")
            writer.write_eof()
            if await reader.read(1):
                raise ValueError("data after echo")
            counts["ok"] += 1
            if counts["ok"] == 1:
                _emit({"started": 1})
        except Exception as e:
            counts["failed"] += 1
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        finally:
            if writer:
                writer.close()

    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        tasks, i = set(), 0
        while not stop.is_set():
            t = asyncio.create_task(asyncio.wait_for(one(i), args.timeout))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
            try:
                await asyncio.wait_for(stop.wait(), 1 / args.rate)
            except asyncio.TimeoutError:
                pass
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        _emit({"done": dict(counts, errors=errors, opened=i)})

    asyncio.run(main())


# ---------------------------------------------------------------------------
# A packet delayer: netfilter queue (iptables -j NFQUEUE), verdicts held back.

NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 1, 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_COPY_META = 1, 1
NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 1, 4, 2
NF_ACCEPT = 1


def _nfq_msg(kind, queue, attrs, flags=NLM_F_REQUEST):
    """One nfnetlink queue message: nlmsghdr, nfgenmsg, then attributes."""
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue)
    for atype, data in attrs:
        body += struct.pack("=HH", 4 + len(data), atype) + data
        body += b"\0" * (-len(data) % 4)
    return struct.pack("=IHHII", 16 + len(body), NFNL_SUBSYS_QUEUE << 8 | kind, flags, 0, 0) + body


def _nl_messages(data):
    """(type, payload) of each netlink message in one datagram."""
    off = 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if length < 16:
            break
        yield kind, data[off + 16:off + length]
        off += (length + 3) & ~3


def _packet_id(payload):
    """The packet id of an NFQNL_MSG_PACKET payload (after its nfgenmsg)."""
    off = 4
    while off + 4 <= len(payload):
        alen, atype = struct.unpack_from("=HH", payload, off)
        if alen < 4:
            break
        if atype & 0x7fff == NFQA_PACKET_HDR:
            return struct.unpack_from("!I", payload, off + 4)[0]
        off += (alen + 3) & ~3
    return None


def delay_queue(args):
    """Holds every packet of netfilter queue args.queue for args.delay_ms,
    then accepts it: a fixed one-way delay, in order, for whatever rules send
    to the queue. Prints {"ready": ...} once bound and, on SIGTERM, how many
    packets it delayed."""
    import collections
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    nl.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: never drop a notice
    nl.bind((0, 0))
    config = [
        [(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_UNSPEC))],
        [(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))],
        [(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536))],
    ]
    for attrs in config:
        nl.send(_nfq_msg(NFQNL_MSG_CONFIG, args.queue, attrs, NLM_F_REQUEST | NLM_F_ACK))
        for kind, payload in _nl_messages(nl.recv(65536)):
            err = struct.unpack_from("=i", payload)[0] if kind == NLMSG_ERROR else 0
            if err:
                raise OSError(-err, f"nfqueue config: {os.strerror(-err)}")
    held = collections.deque()
    lock = threading.Condition()
    counts = {"delayed": 0}
    stop = threading.Event()

    def release():
        while not stop.is_set():
            with lock:
                while not held and not stop.is_set():
                    lock.wait(0.1)
                if not held:
                    continue
                due, last = held[0][0], None
                wait = due - time.monotonic()
                if wait > 0:
                    lock.wait(wait)
                    continue
                now = time.monotonic()
                while held and held[0][0] <= now:
                    last = held.popleft()[1]
            # Ids grow in arrival order, so one batch verdict accepts every
            # packet up to the last one due.
            nl.send(_nfq_msg(NFQNL_MSG_VERDICT_BATCH, args.queue, [
                (NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, last))]))

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t = threading.Thread(target=release, daemon=True)
    t.start()
    nl.settimeout(0.2)
    _emit({"ready": args.queue})
    while not stop.is_set():
        try:
            data = nl.recv(1 << 20)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        due = time.monotonic() + args.delay_ms / 1000
        with lock:
            for kind, payload in _nl_messages(data):
                if kind == (NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET):
                    pid = _packet_id(payload)
                    if pid is not None:
                        held.append((due, pid))
                        counts["delayed"] += 1
            lock.notify()
    t.join(1)
    _emit({"stats": counts})


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("integrity-backend", "integrity-client"):
        q = sub.add_parser(name)
        q.add_argument("--conns", type=int, default=16)
        q.add_argument("--bytes", type=int, default=1 << 24)
        q.add_argument("--block", type=int, default=8 << 20)
        q.add_argument("--max-chunk", type=int, default=1 << 18)
        q.add_argument("--timeout", type=float, default=60)
        q.add_argument("--target")
        q.add_argument("--source")
    sub.add_parser("echo-backend")
    q = sub.add_parser("delay-queue")
    q.add_argument("--queue", type=int, required=True)
    q.add_argument("--delay-ms", type=float, required=True)
    q = sub.add_parser("churn-client")
    q.add_argument("--target", required=True)
    q.add_argument("--total", type=int, default=20000)
    q.add_argument("--concurrency", type=int, default=200)
    q.add_argument("--timeout", type=float, default=10)
    q = sub.add_parser("rate-client")
    q.add_argument("--target", required=True)
    q.add_argument("--rate", type=float, default=200)
    q.add_argument("--timeout", type=float, default=10)
    q = sub.add_parser("steady-client")
    q.add_argument("--target", required=True)
    q.add_argument("--conns", type=int, default=2000)
    q.add_argument("--pieces", type=int, default=40)
    q.add_argument("--piece", type=int, default=512)
    q.add_argument("--gap", type=float, default=0.1)
    q.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    {"integrity-backend": integrity_backend, "integrity-client": integrity_client,
     "steady-client": steady_client, "rate-client": rate_client,
     "echo-backend": echo_backend, "churn-client": churn_client,
     "delay-queue": delay_queue}[args.cmd](args)


if __name__ == "__main__":
    main()
