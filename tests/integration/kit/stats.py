"""Reading what the relay reports about itself: its stats socket (one
command a connection, JSON or text) and its access log (JSON or text)."""

import json
import socket

import harness
from harness import check
from peers.wire import recv_to_eof


def query(path, command, timeout=5):
    """Sends one line command to the stats socket at path; returns the whole answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        return recv_to_eof(s).decode()
    finally:
        s.close()


def stats_json(path):
    """`show stats json`, parsed."""
    return json.loads(query(path, "show stats json"))


def named(items, name):
    """The one entry of a listeners, backends or servers list called name."""
    found = [i for i in items if i["name"] == name]
    check(len(found) == 1, f"{name} not in {[i['name'] for i in items]}")
    return found[0]


def listener_stats(path, name):
    """Listener name's counters, read now."""
    return named(stats_json(path)["listeners"], name)


def backend_stats(path, name):
    """Backend name's counters (its servers under "servers"), read now."""
    return named(stats_json(path)["backends"], name)


def access_log(path, fmt="json"):
    """The access log's records as dicts: JSON lines parsed, or text lines
    (`TIME key=value ...`) split into their fields, time under "time"."""
    lines = [line for line in harness.read_text(path).splitlines() if line]
    if fmt == "json":
        return [json.loads(line) for line in lines]
    out = []
    for line in lines:
        when, *fields = line.split(" ")
        rec = {"time": when}
        for f in fields:
            k, _, v = f.partition("=")
            rec[k] = v
        out.append(rec)
    return out
