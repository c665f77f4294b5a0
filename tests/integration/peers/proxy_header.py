"""PROXY protocol as the test peers speak it: the v1 and v2 headers a
relay must send for a client, a parser for whatever header arrives, and
readers that take one off a socket."""

import ipaddress
import struct

from .wire import recv_exact

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
