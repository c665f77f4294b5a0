"""Configuration files for the relay, built as Python data and written
through the YAML emitter: listener(), backend() and server() make the
pieces, document() puts them together, write() makes the file and
start() runs a relay on it. Tests import it as `from kit import config
as cfg`."""

import os

import harness

from .yaml_emit import dump

LOOPBACK = "127.0.0.1"


def address(port, host=LOOPBACK):
    """The address host:port, an IPv6 host in brackets; a string is taken
    as an address already."""
    if isinstance(port, str):
        return port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listener(name, bind, **settings):
    """One listeners[] entry: bind is a port on 127.0.0.1, an address, or a
    list of either; settings are its other keys (default_backend, routes,
    proxy_protocol_in, ...)."""
    if isinstance(bind, (list, tuple)):
        bind = [address(b) for b in bind]
    else:
        bind = address(bind)
    return {"name": name, "bind": bind, **settings}


def route(sni, backend):
    """One routes[] entry of a listener: server name (or *.wildcard) to backend."""
    return {"sni": sni, "backend": backend}


def server(addr, **settings):
    """One servers[] entry: addr is a port on 127.0.0.1 or an address;
    settings are weight, max_connections, ..."""
    return {"address": address(addr), **settings}


def backend(name, servers, **settings):
    """One backends[] entry. Health checks are off unless settings give
    one, so a test's servers see only the connections it makes; servers
    are ports, addresses or server() entries."""
    entry = {"name": name}
    if "health_check" not in settings:
        entry["health_check"] = {"mode": "off"}
    entry.update(settings)
    entry["servers"] = [s if isinstance(s, dict) else server(s) for s in servers]
    return entry


def document(listeners=(), backends=(), **settings):
    """The whole document: top-level settings first, then listeners and
    backends."""
    doc = dict(settings)
    if listeners:
        doc["listeners"] = list(listeners)
    if backends:
        doc["backends"] = list(backends)
    return doc


def write(ctx, doc, name="ringrelay.yaml"):
    """Writes doc (a document()) as YAML into the test's directory;
    returns the path."""
    path = os.path.join(ctx.tmpdir, name)
    with open(path, "w") as f:
        f.write(dump(doc))
    return path


def start(ctx, doc, *extra, name="relay"):
    """A relay run with -c on doc, plus extra arguments, waited for until ready."""
    return harness.start_relay(ctx, ["-c", write(ctx, doc), *extra], name)
