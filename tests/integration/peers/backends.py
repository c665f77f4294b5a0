"""Python backends: a raw listener the tests drive by hand, a threaded
plain echo (behind HAProxy), and, in a process of their own, the echo
backend and the integrity backend that strip the relay's PROXY header."""

import asyncio
import queue
import signal
import socket
import threading

from .proxy_header import parse_proxy_header, read_proxy_header
from .streams import Stream, pump_all, random_block
from .wire import emit


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


def integrity_backend(args):
    """Accept args.conns connections and strip each one's PROXY header, then
    on all of them at once send args.bytes while receiving to EOF. Results
    are keyed by the client's port as the header gave it."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(args.conns)
    lsock.settimeout(args.timeout)
    block = random_block(args.block)
    emit({"port": lsock.getsockname()[1]})
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
        st = Stream(c, args.bytes, block, args.max_chunk, 1000 + n, rest)
        st.result.update(src=info.get("src"), dst=info.get("dst"))
        st.key = str(info.get("src", ("?", n))[1])
        streams.append(st)
    pump_all(streams, args.timeout)
    for n, st in enumerate(streams):
        key = st.key
        if key in results:  # two clients on one port: the test is broken, say so
            st.result["port_reuse_error"] = f"client port {key} seen twice"
            key = f"{key}#{n}"
        results[key] = st.result
        st.sock.close()
    emit({"results": results})


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
        server = await asyncio.start_server(handle, args.host, args.port, backlog=4096)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        emit({"port": server.sockets[0].getsockname()[1]})
        await stop.wait()
        server.close()
        emit({"stats": stats})

    asyncio.run(main())
