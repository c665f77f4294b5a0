"""The integrity pair's engine: connections that send random slices of a
random block in random chunk sizes while reading to EOF, SHA-256 on both
sides, all driven from one selector loop."""

import hashlib
import os
import random
import selectors
import socket


def random_block(size):
    return memoryview(os.urandom(size))


def _chunk_size(rng, max_chunk):
    """Log-uniform in [1, max_chunk]: many small writes and some large ones."""
    return min(max_chunk, int(2 ** rng.uniform(0, max_chunk.bit_length())))


class Stream:
    """One connection moving nbytes out (random chunk sizes, random slices
    of block) while reading to EOF (random read sizes), both sides hashed;
    driven by pump_all() with the socket non-blocking."""

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


def pump_all(streams, timeout):
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
