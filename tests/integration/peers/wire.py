"""Socket primitives every peer uses: exact and to-EOF reads, a connect
from a chosen source, a close that resets, and the JSON line a helper
process reports with."""

import json
import socket
import struct
import sys


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


def send_in_pieces(sock, data, cuts):
    """Send data cut at the given offsets, each piece its own segment."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    last = 0
    for cut in list(cuts) + [len(data)]:
        sock.sendall(data[last:cut])
        last = cut


def set_linger_reset(sock):
    """Make close() send a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
