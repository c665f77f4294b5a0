"""Impairing the path between relay and backend inside a namespace:
impairments that drop packets (nftables) or hold them back (iptables to a
netfilter queue, as this kernel has no sch_netem), and the packet delayer
that holds the queue's verdicts (run as `python3 -m peers delay-queue`).

An impairment is a function impair(prefix, port): it sets itself up on the
traffic to and from TCP port, running commands with prefix + argv, and
returns a function that says, once the run is over, how much it did."""

import collections
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import TestSkip

from .helper import Helper
from .wire import emit


def loss(percent):
    """nftables drops percent of the packets to and from the port, at random;
    says how many it dropped."""
    if not shutil.which("nft"):
        raise TestSkip("nft is not installed (Debian package nftables)")

    def impair(prefix, port):
        rules = (f"add table inet loss; add chain inet loss out "
                 f"{{ type filter hook output priority 0; }}; " + "; ".join(
                     f"add rule inet loss out tcp {way} {port} numgen random mod 100 < "
                     f"{percent} counter drop" for way in ("dport", "sport")))
        got = subprocess.run(prefix + ["nft", rules], capture_output=True, text=True)
        if got.returncode != 0:
            raise TestSkip(f"nftables cannot drop packets here: {got.stderr.strip()}")

        def dropped():
            table = subprocess.run(prefix + ["nft", "list", "table", "inet", "loss"],
                                   capture_output=True, text=True).stdout
            return sum(int(n) for n in re.findall(r"counter packets (\d+)", table))
        return dropped
    return impair


def delay(ctx, ms):
    """Every packet to and from the port held ms milliseconds: iptables sends
    them to netfilter queue 7, whose verdicts a delay-queue helper holds
    back; says how many packets it held."""
    if not shutil.which("iptables"):
        raise TestSkip("iptables is not installed (Debian package iptables)")

    def impair(prefix, port):
        for way in ("--dport", "--sport"):
            got = subprocess.run(prefix + ["iptables", "-A", "OUTPUT", "-p", "tcp", way,
                                           str(port), "-j", "NFQUEUE", "--queue-num", "7"],
                                 capture_output=True, text=True)
            if got.returncode != 0:
                raise TestSkip(f"iptables cannot queue packets here: {got.stderr.strip()}")
        q = Helper(ctx, "delay-queue", ["delay-queue", "--queue", "7", "--delay-ms", str(ms)],
                   prefix=prefix)
        q.wait_json("ready", 10)

        def delayed():
            q.stop(signal.SIGTERM, 10)
            return q.wait_json("stats", 5)["stats"]["delayed"]
        return delayed
    return impair


def both(first, second):
    """Two impairments at once; says what each did."""
    def impair(prefix, port):
        a, b = first(prefix, port), second(prefix, port)
        return lambda: (a(), b())
    return impair


# ---------------------------------------------------------------------------
# The packet delayer, in its own process.


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
    emit({"ready": args.queue})
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
    emit({"stats": counts})
