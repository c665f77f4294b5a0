"""TLS as the tests' clients speak it: a context that trusts any
certificate, and the ClientHello a real OpenSSL client sends."""

import ssl


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
