"""TLS as the tests' clients speak it: a context that trusts any
certificate, the ClientHello a real OpenSSL client sends, and an HTTPS
request (or a handshake that must fail) through the relay."""

import ssl

from harness import TestFailure, check
from peers.wire import connect


def insecure_context(alpn=None):
    """A client context that checks no certificate or name (the peers'
    certificates are self-signed); alpn is the protocols to offer."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def client_hello(server_name, alpn=("h2", "http/1.1")):
    """The bytes a real OpenSSL client sends first for server_name (none
    at all when it is an IP address, as OpenSSL sends no SNI for one)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = insecure_context(alpn).wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def _connect(ctx, dst, src):
    """A TCP connection from src to dst, closed when the test ends."""
    raw = connect(dst, src, timeout=10)
    ctx.on_cleanup(raw.close)
    return raw


HTTP_GET = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def https_get(ctx, dst, src):
    """GET / over TLS (no verification) from src; returns (status, body, client port)."""
    raw = _connect(ctx, dst, src)
    port = raw.getsockname()[1]
    tls_ctx = insecure_context()
    with tls_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(HTTP_GET)
        response = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLEOFError:
                break
            if not chunk:
                break
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/") else b"?"
    return status.decode(), body.decode(errors="replace"), port


def expect_body(status, body, src, how):
    """An https_get() answered 200 with src, the address nginx's PROXY header gave."""
    check(status == "200", f"{how} from {src}: HTTP status {status}")
    check(body == src + "\n", f"{how} from {src}: nginx answered {body!r}, want {src!r}")


def handshake_fails(ctx, dst, src):
    """A TLS handshake through the relay that must not succeed."""
    raw = _connect(ctx, dst, src)
    tls_ctx = insecure_context()
    try:
        with tls_ctx.wrap_socket(raw, server_hostname="localhost"):
            pass
    except (ssl.SSLError, OSError) as e:
        return type(e).__name__
    raise TestFailure("the TLS handshake succeeded against a backend that should "
                      "have refused the PROXY header")
