"""Network namespaces the tests make and tear down: one namespace alone
(for impairing a path with rules no other process sees), and a small LAN
for whole-chain tests, each host its own namespace with one address, all
on one bridge in a namespace of its own, so nothing touches the machine's
network."""

import os
import shutil
import subprocess

from harness import TestFailure, TestSkip, read_text

from .daemons import Daemon

SUBNET = "10.77.0"
HOSTS = {"client": 10, "front": 20, "relay": 30, "gateway": 40}


def _ip(*args, check=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and p.returncode != 0:
        raise TestFailure(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


def _require_ip():
    if not shutil.which("ip"):
        raise TestSkip("network namespaces: the ip command (iproute2) is not installed")


class Namespace:
    """One namespace, rr{tag}{pid}, with only its loopback up; deleted when
    the test ends. Skips the test where namespaces cannot be made."""

    def __init__(self, ctx, tag):
        _require_ip()
        self.name = f"rr{tag}{os.getpid() % 100000}"
        probe = _ip("netns", "add", self.name, check=False)
        if probe.returncode != 0:
            raise TestSkip(f"network namespaces cannot be made here: {probe.stderr.strip()}")
        ctx.on_cleanup(lambda: _ip("netns", "del", self.name, check=False))
        _ip("-n", self.name, "link", "set", "lo", "up")

    @property
    def prefix(self):
        """argv prefix that runs a command in the namespace."""
        return ["ip", "netns", "exec", self.name]


class Lan:
    """Hosts client, front, relay and gateway on 10.77.0.0/24."""

    def __init__(self, ctx):
        _require_ip()
        tag = f"rrt{os.getpid() % 100000}"
        self.lan = f"{tag}-lan"
        self.ns = {h: f"{tag}-{h}" for h in HOSTS}
        self.made = []
        ctx.on_cleanup(self.teardown)  # first registered: runs after the daemons stop
        probe = _ip("netns", "add", self.lan, check=False)
        if probe.returncode != 0:
            raise TestSkip(f"network namespaces cannot be made here: {probe.stderr.strip()}")
        self.made.append(self.lan)
        _ip("-n", self.lan, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.lan, "link", "set", "br0", "up")
        for i, (host, octet) in enumerate(HOSTS.items()):
            ns = self.ns[host]
            _ip("netns", "add", ns)
            self.made.append(ns)
            port = f"p{i}"
            _ip("-n", self.lan, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", self.lan, "link", "set", port, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{octet}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def addr(self, host):
        return f"{SUBNET}.{HOSTS[host]}"

    def prefix(self, host):
        """argv prefix that runs a command on host."""
        return ["ip", "netns", "exec", self.ns[host]]

    def run(self, host, argv, timeout=30, **kw):
        return subprocess.run(self.prefix(host) + list(argv), capture_output=True,
                              timeout=timeout, **kw)

    def teardown(self):
        for ns in reversed(self.made):
            _ip("netns", "del", ns, check=False)
        self.made = []


def listening_in(pid, port):
    """Whether the network namespace of process pid has a TCP listener on port."""
    for path in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        for line in read_text(path).splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


class LanDaemon(Daemon):
    """nginx or HAProxy (kind) on a host of the LAN, its config a str.format
    template filled with values and dir (its own directory), waited for
    until it listens on every port in ports."""

    def __init__(self, ctx, lan, host, name, kind, template, values, ports):
        self.ports = list(ports)
        super().__init__(ctx, name, kind, template, values, prefix=lan.prefix(host))

    def listening(self):
        return all(listening_in(self.pid, p) for p in self.ports)
