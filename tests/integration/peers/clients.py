"""Python clients: a streamer that watches how each direction ends, and,
in a process of their own, the integrity, steady, churn and rate clients
that load the relay and report JSON."""

import asyncio
import errno
import os
import random
import signal
import socket
import threading
import time

from .streams import Stream, pump_all, random_block
from .wire import connect, emit


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


def integrity_client(args):
    """Open args.conns connections to the relay, then on all of them at once
    send args.bytes while receiving to EOF. Results are keyed by local
    port."""
    host, port = args.target.rsplit(":", 1)
    block = random_block(args.block)
    results, streams = {}, []
    for n in range(args.conns):
        try:
            s = connect((host, int(port)), args.source, args.timeout)
        except Exception as e:
            results[f"connect{n}"] = {"connect_error": repr(e)}
            continue
        st = Stream(s, args.bytes, block, args.max_chunk, 2000 + n)
        st.key = str(s.getsockname()[1])  # now: a reset socket gives its port up
        streams.append(st)
    pump_all(streams, args.timeout)
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
    emit({"results": results})


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
                emit({"connected": opened})
        await asyncio.gather(*(one(n, ready) for n in range(args.conns)))
        emit({"results": {"conns": args.conns, "failed": failed[:20],
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
        emit({"done": dict(counts, errors=errors, elapsed=time.monotonic() - start)})

    asyncio.run(main())


def rate_client(args):
    """Opens args.rate connections a second, each an echo round trip of a
    unique line then a half-close, until SIGTERM; then reports how many
    succeeded and how the others failed (refused, reset, ...). Prints
    {"started": n} after its first success, so a test knows it runs."""
    counts = {"ok": 0, "failed": 0}
    errors = {}
    host, port = args.target.rsplit(":", 1)

    source = (args.source, 0) if args.source else None

    took = []

    async def one(i):
        msg = b"%015d\n" % i
        writer = None
        begin = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(host, int(port), local_addr=source)
            writer.write(msg)
            if await reader.readexactly(len(msg)) != msg:
                raise ValueError("echo mismatch")
            writer.write_eof()
            if await reader.read(1):
                raise ValueError("data after echo")
            counts["ok"] += 1
            took.append(time.monotonic() - begin)
            if counts["ok"] == 1:
                emit({"started": 1})
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
        start = time.monotonic()
        # A batch every 10 ms at high rates: one sleep per connection would
        # cap the rate at what the event loop's timer allows.
        batch = max(1, int(args.rate / 100))
        while not stop.is_set():
            for _ in range(batch):
                t = asyncio.create_task(asyncio.wait_for(one(i), args.timeout))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                i += 1
            due = start + i / args.rate - time.monotonic()
            try:
                await asyncio.wait_for(stop.wait(), max(due, 0.0005))
            except asyncio.TimeoutError:
                pass
        seconds = time.monotonic() - start
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        took.sort()
        p99_ms = round(took[int(len(took) * 0.99)] * 1000, 2) if took else None
        emit({"done": dict(counts, errors=errors, opened=i, seconds=round(seconds, 3),
                           p99_ms=p99_ms)})

    asyncio.run(main())


def sources_client(args):
    """One echo round trip from each of args.sources (comma separated) to
    args.target; reports each source's outcome: served (its line echoed),
    reset, or closed (EOF without the echo)."""
    host, port = args.target.rsplit(":", 1)
    host = host.strip("[]")
    results = {}
    for src in args.sources.split(","):
        family = socket.AF_INET6 if ":" in src else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(args.timeout)
        try:
            s.bind((src, 0))
            s.connect((host, int(port)))
            s.sendall(b"hello\n")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            results[src] = "served" if got == b"hello\n" else "closed"
        except (ConnectionResetError, BrokenPipeError):
            results[src] = "reset"
        except OSError as e:
            results[src] = "reset" if e.errno == errno.ENOTCONN else type(e).__name__
        finally:
            s.close()
    emit({"results": results})
