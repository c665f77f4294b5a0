"""A fleet of relays on namespaces the test makes and removes: a client
host with many source addresses, a balancer host (nftables DNAT by hash,
conntrack) or a router host (BIRD, ECMP), relay hosts, and a gateway host
with two nginx gateway servers (`listen ... ssl proxy_protocol`, the
real-IP module) that answer each request with the client address they
believe, the relay it came through and which of them answered.

    front net 10.78.1.0/24: client .2 (and .100-.115), balancer .1
    back net  10.78.2.0/24: balancer .1, relays .11-.14, gateways .50 .51
    service address 10.78.0.100 (on the balancer's lo)
    BGP tier, IPv6 too: front fd78:1::/64 (client ::2, ::100-::103, router
    ::1), back fd78:2::/64 (router ::1, relays ::11-::14), service address
    fd78::100

Nothing is added to the machine's own namespace: both nets are bridges in
a namespace of their own."""

import hashlib
import json
import os
import shutil
import subprocess

import harness
from harness import Proc, TestFailure, TestSkip, wait_until
from kit import config as cfg

from .daemons import NGINX_TEMPS, NGINX_TOP, Daemon, make_cert
from .helper import Helper
from .netns import listening_in

VIP = "10.78.0.100"
PORT = 8443
ADMIN = 9100
FRONT, BACK = "10.78.1", "10.78.2"
SOURCES = [f"{FRONT}.{100 + i}" for i in range(16)]
VIP6, FRONT6, BACK6 = "fd78::100", "fd78:1:", "fd78:2:"
SOURCES6 = [f"{FRONT6}:{100 + i}" for i in range(4)]
GATEWAYS = [f"{BACK}.50", f"{BACK}.51"]
BIG_BYTES = 24 << 20
REPO_DEPLOY = os.path.join(harness.REPO, "deploy")


def relay_addr6(i):
    """Relay i's IPv6 address on the back net (BGP tier)."""
    return f"{BACK6}:{10 + i}"


def relay_addr(i):
    """Relay i's address (i from 1)."""
    return f"{BACK}.{10 + i}"


def _ip(*args, check=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and p.returncode != 0:
        raise TestFailure(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


GATEWAY_CONF = NGINX_TOP.replace("worker_processes 1;", "worker_processes 2;") + """\
http {{
    log_format fleet '$proxy_protocol_addr:$proxy_protocol_port via $realip_remote_addr '
                     'to $server_addr $request_uri $status';
    access_log {dir}/access.log fleet;
""" + NGINX_TEMPS + """\
    server {{
        listen {gw}:{port} ssl proxy_protocol;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        set_real_ip_from {back}.0/24;
        real_ip_header proxy_protocol;
        add_header X-Client "$proxy_protocol_addr:$proxy_protocol_port" always;
        add_header X-Relay $realip_remote_addr always;
        add_header X-Gateway $server_addr always;
        location = /who {{
            default_type text/plain;
            return 200 "$remote_addr\\n";
        }}
        location = /big.bin {{
            root {big_dir};
        }}
    }}
}}
"""


class Gateway(Daemon):
    """One gateway server: nginx on the gateway host, on address gw."""

    def __init__(self, ctx, prefix, gw, big_dir):
        crt, key = make_cert(ctx.session_dir)
        super().__init__(ctx, f"gateway-{gw}", "nginx", GATEWAY_CONF,
                         {"gw": gw, "port": PORT, "crt": crt, "key": key, "back": BACK,
                          "big_dir": big_dir}, prefix=prefix)

    def listening(self):
        return listening_in(self.pid, PORT)

    def access_lines(self):
        return self.file("access.log").splitlines()


def gateway_lines(gateways):
    """Every access-log line of the gateway servers."""
    return [ln for g in gateways for ln in g.access_lines()]


class Fleet:
    """The namespaces and the daemons of one fleet test; everything is
    removed when the test ends, also when it fails."""

    def __init__(self, ctx, relays=3):
        if not shutil.which("ip") or not shutil.which("nft"):
            raise TestSkip("the fleet needs ip (iproute2) and nft (nftables)")
        self.ctx = ctx
        self.bgp = False
        self.bird_socks, self.announcers = {}, {}
        tag = f"rrf{os.getpid() % 100000}"
        self.ns = {h: f"{tag}-{h}" for h in
                   ["net", "client", "lb", "gw"] + [f"r{i}" for i in range(1, 5)]}
        self.made = []
        self.relays = {}
        ctx.on_cleanup(self.teardown)  # registered first: runs after the daemons stop
        probe = _ip("netns", "add", self.ns["net"], check=False)
        if probe.returncode != 0:
            raise TestSkip(f"network namespaces cannot be made here: {probe.stderr.strip()}")
        self.made.append(self.ns["net"])
        for br in ("front", "back"):
            _ip("-n", self.ns["net"], "link", "add", br, "type", "bridge")
            _ip("-n", self.ns["net"], "link", "set", br, "up")
        self._host("client", [("front", f"{FRONT}.2")], via=f"{FRONT}.1")
        for a in SOURCES:
            _ip("-n", self.ns["client"], "addr", "add", f"{a}/24", "dev", "front")
        self._host("lb", [("front", f"{FRONT}.1"), ("back", f"{BACK}.1")])
        _ip("-n", self.ns["lb"], "addr", "add", f"{VIP}/32", "dev", "lo")
        self.run("lb", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        self._host("gw", [("back", GATEWAYS[0])])
        _ip("-n", self.ns["gw"], "addr", "add", f"{GATEWAYS[1]}/24", "dev", "back")
        for i in range(1, 5):
            self._host(f"r{i}", [("back", relay_addr(i))], via=f"{BACK}.1")
        big_dir = os.path.join(ctx.tmpdir, "www")
        os.makedirs(big_dir)
        os.chmod(big_dir, 0o755)
        self.big = os.path.join(big_dir, "big.bin")
        # Every MiB differs, so a piece repeated or skipped changes the digest.
        digest = hashlib.sha256()
        with open(self.big, "wb") as f:
            for i in range(BIG_BYTES >> 20):
                block = hashlib.sha256(b"ringrelay fleet %d" % i).digest() * (1 << 15)
                f.write(block)
                digest.update(block)
        os.chmod(self.big, 0o644)
        self.big_sha256 = digest.hexdigest()
        self.gateways = [Gateway(ctx, self.prefix("gw"), gw, big_dir) for gw in GATEWAYS]

    def _host(self, host, links, via=None):
        """Namespace host with one veth per (net, address) on that net's
        bridge, the interface named after the net."""
        ns = self.ns[host]
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        for net, addr in links:
            port = f"{host}-{net}"[:15]
            _ip("-n", self.ns["net"], "link", "add", port, "type", "veth", "peer", "name", net,
                "netns", ns)
            _ip("-n", self.ns["net"], "link", "set", port, "master", net, "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", net)
            _ip("-n", ns, "link", "set", net, "up")
        if via:
            _ip("-n", ns, "route", "add", "default", "via", via)

    def prefix(self, host):
        return ["ip", "netns", "exec", self.ns[host]]

    def run(self, host, argv, timeout=30, check=True):
        p = subprocess.run(self.prefix(host) + list(argv), capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise TestFailure(f"{host}: {' '.join(argv)}: {p.stderr.strip()} {p.stdout.strip()}")
        return p

    # ---- relays ----

    def relay_config(self, i, gateway_port=PORT, **settings):
        """Relay i's configuration file (gateway_port: where it thinks the
        gateways listen). It listens on its own address, or on the service
        address in the BGP tier."""
        bind = [f"{VIP}:{PORT}", f"[{VIP6}]:{PORT}"] if self.bgp else f"{relay_addr(i)}:{PORT}"
        doc = cfg.document(
            [cfg.listener("public", bind, default_backend="kong")],
            [cfg.backend("kong", [f"{g}:{gateway_port}" for g in GATEWAYS],
                         balance="client_ip_hash",
                         health_check={"mode": "proxy_local", "interval": "500ms",
                                       "timeout": "400ms", "rise": 1, "fall": 2})],
            **dict(dict(workers=1, admin={"listen": f"{relay_addr(i)}:{ADMIN}",
                                          "allow": [f"{BACK}.0/24", "127.0.0.0/8"]},
                        shutdown_grace="2s", drain_timeout="30s"), **settings))
        return cfg.write(self.ctx, doc, name=f"relay{i}.yaml")

    def start_relay(self, i, **settings):
        rl = harness.start_relay(self.ctx, ["-c", self.relay_config(i, **settings)],
                                 name=f"relay{i}", wrapper=self.prefix(f"r{i}"))
        self.relays[i] = rl
        return rl

    def ready(self, i):
        """Relay i's /ready status code, asked from the balancer."""
        p = self.run("lb", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "--max-time", "1", f"http://{relay_addr(i)}:{ADMIN}/ready"],
                     check=False)
        return int(p.stdout or 0)

    # ---- the connection-tracking tier ----

    def start_balancer(self, relays):
        """The ruleset of deploy/nftables, loaded once, and the membership
        script over relays (numbers) on the balancer."""
        self.run("lb", ["nft", "-D", f"VIP={VIP}", "-D", f"PORT={PORT}", "-f",
                        os.path.join(REPO_DEPLOY, "nftables", "ringrelay-lb.nft")])
        self.members = Proc("members", self.prefix("lb") + [
            "sh", os.path.join(REPO_DEPLOY, "nftables", "ringrelay-lb-members"),
            *[f"{relay_addr(i)}:{ADMIN}" for i in relays]], self.ctx.tmpdir)
        self.ctx.on_cleanup(lambda: self.members.stop(timeout=5) is not None or
                            self.members.kill())
        return self.members

    def member_lines(self):
        return [ln for ln in self.members.stdout().splitlines() if ln.startswith("members:")]

    def members_now(self):
        lines = self.member_lines()
        if not lines:
            return None
        return lines[-1].split("(")[0].split(":", 1)[1].split()

    def wait_members(self, relays, timeout=10):
        want = sorted(relay_addr(i) for i in relays)
        wait_until(lambda: sorted(self.members_now() or []) == want, timeout,
                   f"the balancer's members to be {want}")

    # ---- the BGP tier ----

    def _bird(self, host, template, replace):
        """BIRD on host with deploy/bird/template, its example addresses
        replaced; returns its control socket."""
        d = os.path.join(self.ctx.tmpdir, f"bird-{host}")
        os.makedirs(d, exist_ok=True)
        text = harness.read_text(os.path.join(REPO_DEPLOY, "bird", template))
        for old, new in replace:
            text = text.replace(old, new)
        conf, sock, pid = (os.path.join(d, n) for n in ("bird.conf", "bird.ctl", "bird.pid"))
        with open(conf, "w") as f:
            f.write(text)
        bird = Proc(f"bird-{host}", self.prefix(host) + ["bird", "-f", "-c", conf, "-s", sock,
                                                          "-P", pid], self.ctx.tmpdir)
        self.ctx.on_cleanup(lambda: bird.stop(timeout=5) is not None or bird.kill())
        wait_until(lambda: os.path.exists(sock), 10, f"BIRD on {host} to open its socket")
        return sock

    def start_router(self, resilient=False):
        """The BGP tier's front: BIRD on the front host (router.conf), ECMP
        with an L4 hash; the service address is learnt, not local. With
        resilient, BIRD's kernel protocol exports nothing and
        ringrelay-nexthops routes the service address through a resilient
        next-hop group instead."""
        if not shutil.which("bird"):
            raise TestSkip("bird is not installed (Debian package bird2)")
        self.bgp = True
        self.run("lb", ["sysctl", "-q", "-w", "net.ipv4.fib_multipath_hash_policy=1",
                        "net.ipv6.fib_multipath_hash_policy=1", "net.ipv6.conf.all.forwarding=1"])
        _ip("-n", self.ns["lb"], "addr", "del", f"{VIP}/32", "dev", "lo")
        self._add6("client", "front", f"{FRONT6}:2", via=f"{FRONT6}:1")
        for a in SOURCES6:
            self._add6("client", "front", a)
        self._add6("lb", "front", f"{FRONT6}:1")
        self._add6("lb", "back", f"{BACK6}:1")
        replace = [("192.0.2.0/24", f"{BACK}.0/24"), ("192.0.2.1;", f"{BACK}.1;"),
                   ("198.51.100.10/32", f"{VIP}/32"), ("2001:db8:2::/64", f"{BACK6}:/64"),
                   ("2001:db8::100/128", f"{VIP6}/128")]
        if resilient:
            replace.append(("ipv4 { import none; export where source = RTS_BGP; };",
                            "ipv4 { import none; export none; };"))
        self.router_sock = self._bird("lb", "router.conf", replace)
        if resilient:
            self.nexthops = Proc("nexthops", self.prefix("lb") + [
                "sh", os.path.join(REPO_DEPLOY, "bird", "ringrelay-nexthops"), "-i", "0.1",
                "-s", self.router_sock, f"{VIP}/32"], self.ctx.tmpdir)
            self.ctx.on_cleanup(lambda: self.nexthops.stop(timeout=5) is not None or
                                self.nexthops.kill())

    def _add6(self, host, dev, addr, via=None):
        """An IPv6 address (no duplicate detection: usable at once)."""
        _ip("-n", self.ns[host], "-6", "addr", "add", f"{addr}/{128 if dev == 'lo' else 64}",
            "dev", dev, "nodad")
        if via:
            _ip("-n", self.ns[host], "-6", "route", "add", "default", "via", via)

    def start_bgp_relay(self, i, **settings):
        """Relay i in the BGP tier: the service addresses on its lo, BIRD
        (relay.conf, both sessions) and the announcer beside it, the relay
        itself."""
        ns = f"r{i}"
        if _ip("-n", self.ns[ns], "addr", "show", "dev", "lo").stdout.find(VIP) < 0:
            _ip("-n", self.ns[ns], "addr", "add", f"{VIP}/32", "dev", "lo")
            self._add6(ns, "lo", VIP6)
            self._add6(ns, "back", relay_addr6(i), via=f"{BACK6}:1")
        if i not in self.bird_socks:
            self.bird_socks[i] = self._bird(ns, "relay.conf", [
                ("192.0.2.11;", f"{relay_addr(i)};"), ("192.0.2.1 as", f"{BACK}.1 as"),
                ("198.51.100.10/32", f"{VIP}/32"), ("2001:db8:2::1 as", f"{BACK6}:1 as"),
                ("2001:db8::100/128", f"{VIP6}/128")])
        rl = self.start_relay(i, **settings)
        ann = Proc(f"announce{i}", self.prefix(ns) + [
            "sh", os.path.join(REPO_DEPLOY, "bird", "ringrelay-announce"), "-s",
            self.bird_socks[i], f"http://{relay_addr(i)}:{ADMIN}/ready"], self.ctx.tmpdir)
        self.ctx.on_cleanup(lambda: ann.stop(timeout=5) is not None or ann.kill())
        self.announcers[i] = ann
        return rl

    def next_hops6(self):
        """The relays the router's IPv6 route to the service address leads to."""
        out = self.run("lb", ["ip", "-6", "route", "show", f"{VIP6}/128"], check=False).stdout
        return sorted(w.split()[0] for w in out.split("via ")[1:])

    def next_hops(self):
        """The relays the router's route to the service address leads to
        (through a next-hop group or not)."""
        out = self.run("lb", ["ip", "route", "show", f"{VIP}/32"], check=False).stdout
        if "nhid" in out:
            group = out.split("nhid")[1].split()[0]
            ids = self.run("lb", ["ip", "nexthop", "show", "id", group]).stdout
            ids = ids.split("group")[1].split()[0].split("/")
            out = " ".join(self.run("lb", ["ip", "nexthop", "show", "id", i]).stdout
                           for i in ids)
        return sorted(w.split()[0] for w in out.split("via ")[1:])

    def wait_next_hops(self, relays, timeout=20):
        want = sorted(relay_addr(i) for i in relays)
        wait_until(lambda: self.next_hops() == want, timeout,
                   f"the router's next hops to be {want}")

    # ---- Prometheus ----

    def start_prometheus(self, relays):
        if not shutil.which("prometheus"):
            raise TestSkip("prometheus is not installed (Debian package prometheus)")
        d = os.path.join(self.ctx.tmpdir, "prometheus")
        os.makedirs(d)
        conf = os.path.join(d, "prometheus.yml")
        text = harness.read_text(os.path.join(REPO_DEPLOY, "prometheus", "ringrelay-fleet.yml"))
        for old, new in (("scrape_interval: 5s", "scrape_interval: 250ms"),
                         ("scrape_timeout: 4s", "scrape_timeout: 200ms"),
                         ('"192.0.2.11:9100", "192.0.2.12:9100", "192.0.2.13:9100"',
                          ", ".join(f'"{relay_addr(i)}:{ADMIN}"' for i in relays))):
            if old not in text:
                raise TestFailure(f"deploy/prometheus/ringrelay-fleet.yml has no '{old}'")
            text = text.replace(old, new)
        with open(conf, "w") as f:
            f.write(text)
        self.prometheus = Proc("prometheus", self.prefix("lb") + [
            "prometheus", f"--config.file={conf}", f"--storage.tsdb.path={d}/data",
            "--web.listen-address=127.0.0.1:9090", "--log.level=warn"], self.ctx.tmpdir)
        self.ctx.on_cleanup(self.prometheus.kill)
        wait_until(lambda: self.run("lb", ["curl", "-sf", "http://127.0.0.1:9090/-/ready"],
                                    check=False).returncode == 0, 30, "Prometheus to be ready")

    def promql(self, query, at=None):
        """The result vector of an instant query."""
        args = ["curl", "-sf", "--max-time", "5", "http://127.0.0.1:9090/api/v1/query",
                "--data-urlencode", f"query={query}"]
        if at is not None:
            args += ["--data-urlencode", f"time={at}"]
        out = json.loads(self.run("lb", args).stdout)
        if out.get("status") != "success":
            raise TestFailure(f"PromQL {query}: {out}")
        return out["data"]["result"]

    # ---- clients ----

    def client(self, name, args, v6=False):
        target, sources = (f"[{VIP6}]:{PORT}", SOURCES6) if v6 else (f"{VIP}:{PORT}", SOURCES)
        return Helper(self.ctx, name, ["fleet-client", "--target", target,
                                       "--sources", ",".join(sources), *args],
                      prefix=self.prefix("client"))

    def teardown(self):
        for ns in reversed(self.made):
            _ip("netns", "del", ns, check=False)
        self.made = []

