"""The alert rules and the Grafana dashboard in deploy/, against the real
thing. promtool checks the rules and runs their unit tests (every alert
fires on the series that should fire it, and stays silent beside it).
Then Debian's Prometheus scrapes a relay under a mixed load (good traffic,
a server that refuses the PROXY header, a backend whose only server is
gone, clients forging PROXY headers) and evaluates the rules; every PromQL
expression of the dashboard and of the rules is run there, and each must
return data: no panel is silently dead because a metric was renamed. The
relay's /metrics follows Prometheus's naming guidelines (promtool check
metrics, _total counters, _seconds histograms)."""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import urllib.parse
import urllib.request

import harness
from harness import REPO, Proc, check, wait_until
from kit import config as cfg
from peers.daemons import Nginx
from peers.helper import start_echo

from .base import case

PROM_DIR = os.path.join(REPO, "deploy", "prometheus")
RULES = os.path.join(PROM_DIR, "ringrelay.rules.yml")
RULE_TESTS = os.path.join(PROM_DIR, "ringrelay.rules.test.yml")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "ringrelay.json")

# What Grafana puts in for the dashboard's variables, as the test does.
VARIABLES = {"$__rate_interval": "30s", "$job": ".+", "$instance": ".+"}


def promtool(*args):
    p = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60,
                       cwd=PROM_DIR)
    check(p.returncode == 0, f"promtool {' '.join(args)}: {p.stdout} {p.stderr}")
    return p.stdout


def rules():
    """[(kind, name, expr)] of the rules file, kind "record" or "alert"."""
    import yaml
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [("record", r["record"], r["expr"]) if "record" in r else ("alert", r["alert"], r["expr"])
            for g in doc["groups"] for r in g["rules"]]


@case("prometheus_rules_pass_promtool_and_their_tests", per_io=False, sanitized=False)
def rule_tests(ctx):
    if not shutil.which("promtool"):
        raise harness.TestSkip("promtool is not installed (Debian package prometheus)")
    promtool("check", "rules", RULES)
    out = promtool("test", "rules", RULE_TESTS)
    check("SUCCESS" in out, f"promtool test rules: {out}")
    # Every alert has a test that fires it and one where it stays silent.
    import yaml
    with open(RULE_TESTS) as f:
        tests = yaml.safe_load(f)
    check(tests.get("rule_files") == ["ringrelay.rules.yml"], f"rule_files: {tests.get('rule_files')}")
    fired, silent = set(), set()
    for t in tests["tests"]:
        for a in t.get("alert_rule_test", []):
            (fired if a.get("exp_alerts") else silent).add(a["alertname"])
    alerts = {name for kind, name, _ in rules() if kind == "alert"}
    check(alerts - fired == set(), f"alerts no test fires: {sorted(alerts - fired)}")
    check(alerts - silent == set(), f"alerts no test keeps silent: {sorted(alerts - silent)}")
    ctx.note(f"{len(alerts)} alerts, each fired and kept silent by promtool test rules")


def dashboard_queries():
    """[(where, expr)]: every target of every panel, and the variables'
    queries (label_values(SELECTOR, label) asks for SELECTOR)."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((f"panel '{p['title']}' {t['refId']}", t["expr"]))
    walk(dash["panels"])
    names = [v["name"] for v in dash["templating"]["list"]]
    check("instance" in names, f"the dashboard has no instance variable: {names}")
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*), *(\w+)\)", v["definition"])
            check(m, f"variable {v['name']}: {v['definition']}")
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def substitute(expr):
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    check("$" not in expr, f"a variable the test does not know in {expr}")
    return expr


class Prometheus(Proc):
    """Debian's Prometheus scraping target every second and evaluating the
    rules file every second, on 127.0.0.1."""

    def __init__(self, ctx, target):
        d = os.path.join(ctx.tmpdir, "prometheus")
        os.makedirs(d)
        conf = os.path.join(d, "prometheus.yml")
        with open(conf, "w") as f:
            f.write(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
                    f"rule_files: [{RULES}]\n"
                    f"scrape_configs:\n"
                    f"  - job_name: ringrelay\n"
                    f"    static_configs: [{{targets: ['{target}']}}]\n")
        self.port = harness.free_port()
        super().__init__("prometheus", [
            "prometheus", f"--config.file={conf}", f"--storage.tsdb.path={d}/data",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"], ctx.tmpdir)
        ctx.on_cleanup(self.kill)
        wait_until(self._ready, 30, "Prometheus to be ready")

    def _ready(self):
        if not self.alive():
            raise harness.TestFailure(f"prometheus exited: {harness.tail(self.stderr())}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            out = json.load(r)
        check(out.get("status") == "success", f"Prometheus {path} {params}: {out}")
        return out["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def active_alerts(self):
        return self.api("alerts")["alerts"]


def has_data(result):
    """Some sample that is a number (a quantile of no traffic is NaN)."""
    return any(r["value"][1] not in ("NaN", "+Inf", "-Inf") for r in result)


def naming(admin_port):
    """/metrics as Prometheus's naming guidelines have it: promtool check
    metrics says nothing, counters end in _total and nothing else does,
    histograms are in seconds."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read()
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       timeout=30)
    check(p.returncode == 0 and not p.stdout and not p.stderr,
          f"promtool check metrics: {p.stdout!r} {p.stderr!r}")
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text.decode(), re.M)
    check(len(types) > 40, f"only {len(types)} metrics")
    for name, kind in types:
        check((kind == "counter") == name.endswith("_total"), f"{kind} {name}")
        check(kind != "histogram" or name.endswith("_seconds"), f"{kind} {name}")


class MixedLoad(threading.Thread):
    """Good clients, clients of a server that refuses PROXY headers, of a
    backend with no server, and clients forging PROXY headers, in rounds
    until stopped; counts what it did."""

    def __init__(self, ports):
        super().__init__(daemon=True)
        self.ports = ports
        self.halt = threading.Event()
        self.rounds = 0
        self.echoed = 0

    def exchange(self, port, data):
        """Connect, send, read until the relay or the server ends it."""
        got = b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                while chunk := s.recv(65536):
                    got += chunk
        except OSError:
            pass  # a reset is what two of the four kinds get
        return got

    def run(self):
        good = b"x" * 4096
        while not self.halt.is_set() and self.rounds < 2000:
            self.echoed += self.exchange(self.ports["public"], good) == good
            self.exchange(self.ports["gateway"], b"\x16\x03\x01\x00\x05hello")
            self.exchange(self.ports["broken"], b"anyone there?")
            self.exchange(self.ports["public"],
                          b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\nforged")
            self.rounds += 1
            self.halt.wait(0.05)


@case("dashboard_and_rules_query_a_real_prometheus", per_io=False, budget=120, sanitized=False)
def dashboard(ctx):
    if not shutil.which("prometheus"):
        raise harness.TestSkip("prometheus is not installed (Debian package prometheus)")
    echo = start_echo(ctx)
    nginx = Nginx(ctx, ctx.session_dir, proxy_protocol=False)
    ports = {name: harness.free_port() for name in ("public", "gateway", "broken", "admin")}
    check_fast = {"mode": "tcp", "interval": "200ms", "timeout": "200ms", "rise": 1, "fall": 1}
    conf = cfg.document(
        [cfg.listener("public", ports["public"], default_backend="app",
                      proxy_protocol_in="v2", trusted_sources=["192.0.2.0/24"]),
         cfg.listener("gateway", ports["gateway"], default_backend="gateway"),
         cfg.listener("broken", ports["broken"], default_backend="broken")],
        [cfg.backend("app", [echo.port], proxy_protocol="v2", health_check=check_fast),
         cfg.backend("gateway", [nginx.port4], proxy_protocol="v1", health_check=check_fast),
         cfg.backend("broken", [harness.free_port()], health_check=check_fast)],
        admin={"listen": f"127.0.0.1:{ports['admin']}"},
        access_log={"path": os.path.join(ctx.tmpdir, "access.log"), "mode": "all"})
    cfg.start(ctx, conf)
    naming(ports["admin"])
    prom = Prometheus(ctx, f"127.0.0.1:{ports['admin']}")

    load = MixedLoad(ports)
    load.start()
    ctx.on_cleanup(load.halt.set)
    try:
        # Enough scrapes of the load for every rate, and the alerts the load
        # should raise (pending: their for: is longer than this test).
        wait_until(lambda: has_data(prom.query(
            'count_over_time(ringrelay_ready{job="ringrelay"}[1m]) >= 8')), 40,
            "eight scrapes of the relay")
        want = {("RingrelayBackendAllServersDown", "backend", "broken"),
                ("RingrelayBackendRefusesProxyHeader", "backend", "gateway"),
                ("RingrelayInboundHeadersRefused", "listener", "public"),
                ("RingrelayNotReady", None, None)}

        def raised():
            active = prom.active_alerts()
            return all(any(a["labels"]["alertname"] == name and
                           (label is None or a["labels"].get(label) == value) for a in active)
                       for name, label, value in want) and active
        active = wait_until(raised, 30, f"alerts {sorted(w[0] for w in want)} to be raised")

        dead = []
        for where, expr in dashboard_queries():
            if not has_data(prom.query(substitute(expr))):
                dead.append(f"{where}: {expr}")
        for kind, name, expr in rules():
            if kind == "record":
                for what in (expr, name):
                    if not has_data(prom.query(what)):
                        dead.append(f"recording rule {name}: {what}")
                continue
            # An alert's expression returns data only while it fires: the
            # four above do, and every series the others read must exist.
            if name in {w[0] for w in want}:
                if not prom.query(expr):
                    dead.append(f"alert {name}: {expr}")
            for metric in set(re.findall(r"\b(ringrelay_[a-z0-9_]+|up)\b", expr)):
                if not prom.query(f'count({{__name__="{metric}"}})'):
                    dead.append(f"alert {name} reads {metric}, which the relay does not export")
        check(not dead, f"{len(dead)} queries returned nothing: " + "; ".join(dead))
    finally:
        load.halt.set()
        load.join(10)
    names = sorted({a["labels"]["alertname"] for a in active})
    check(names == sorted(w[0] for w in want), f"alerts raised on a sound relay: {names}")
    check(load.echoed > 0, "no good client got its data back through the relay")
    ctx.note(f"{len(dashboard_queries())} dashboard queries and {len(rules())} rules returned "
             f"data after {load.rounds} rounds of mixed load; alerts raised: {', '.join(names)}")
