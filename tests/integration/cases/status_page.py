"""The status page (GET / on the admin listener and on the stats socket),
loaded in a real browser: headless Chromium renders it from a running
relay with a dead server, a drained one and a disabled listener, and the
test reads their states from the rendered DOM, in words."""

import html.parser
import os
import re
import shutil
import subprocess

import harness
from harness import check
from kit import config as cfg
from kit.stats import query
from peers.daemons import require
from peers.helper import start_echo

from .admin import http
from .base import case


class Rows(html.parser.HTMLParser):
    """Each table row with a data-server or data-listener attribute: its
    class and the text of its state cell, by server or listener."""

    def __init__(self):
        super().__init__()
        self.rows, self.row, self.in_state, self.readiness, self.in_ready = {}, None, False, "", False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and ("data-server" in a or "data-listener" in a):
            key = a.get("data-server") or a.get("data-listener")
            self.row = self.rows[key] = {"class": a.get("class"), "state": ""}
        elif tag == "td" and self.row is not None and a.get("class") == "state":
            self.in_state = True
        elif tag == "p" and a.get("id") == "readiness":
            self.in_ready = True

    def handle_endtag(self, tag):
        if tag == "td":
            self.in_state = False
        elif tag == "tr":
            self.row = None
        elif tag == "p":
            self.in_ready = False

    def handle_data(self, data):
        if self.in_state:
            self.row["state"] += data
        if self.in_ready:
            self.readiness += data


def chromium(ctx, *args):
    """Headless Chromium with a profile and home of its own in the test's
    directory (nothing of it is left behind); returns its stdout."""
    require("chromium")
    home = os.path.join(ctx.tmpdir, "chromium-home")
    os.makedirs(home, exist_ok=True)
    argv = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            f"--user-data-dir={home}/profile", *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=home, XDG_CONFIG_HOME=home, XDG_CACHE_HOME=home))
    check(p.returncode == 0, f"chromium exited {p.returncode}: {harness.tail(p.stderr)}")
    return p.stdout


@case("status_page_in_chromium_shows_down_drain_and_disabled", per_io=False, budget=120)
def status_page(ctx):
    """Three servers (one up, one with nothing listening, one drained) and
    two listeners (one disabled): the page Chromium renders names each
    state in words, marks each such row, says the relay is ready, holds no
    external asset, refreshes no more often than once a second, and is the
    same page on the stats socket. A screenshot is taken (and kept where
    RINGRELAY_SCREENSHOT says, for the README)."""
    up, drained = start_echo(ctx, "echo-up"), start_echo(ctx, "echo-drained")
    dead = harness.free_port()
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    admin = harness.free_port()
    checks = {"mode": "tcp", "interval": "100ms", "timeout": "300ms", "rise": 1, "fall": 1}
    cfg.start(ctx, cfg.document(
        stats_socket=sock, stats_socket_level="admin", admin={"listen": f"127.0.0.1:{admin}"},
        listeners=[cfg.listener("web", harness.free_port(), default_backend="kong"),
                   cfg.listener("internal", harness.free_port(), default_backend="kong")],
        backends=[cfg.backend("kong", [cfg.server(up.port, name="kong-1"),
                                       cfg.server(dead, name="kong-2"),
                                       cfg.server(drained.port, name="kong-3")],
                              health_check=checks)]))
    keys = {n: f"127.0.0.1:{p}" for n, p in (("up", up.port), ("dead", dead),
                                              ("drained", drained.port))}
    check(query(sock, f"set server kong/kong-3 state drain").startswith("ok: "), "drain")
    check(query(sock, "disable listener internal").startswith("ok: "), "disable")
    harness.wait_until(lambda: keys["dead"] in query(sock, "show servers") and re.search(
        rf"{re.escape(keys['dead'])}\s+kong-2\s+down", query(sock, "show servers")), 5,
        "the dead server to be down")

    status, head, page = http(admin, "/")
    check(status == 200 and "Content-Type: text/html; charset=utf-8" in head, f"GET /: {head}")
    check(not re.search(r"<link|<img|<iframe|\bsrc=|https?://", page),
          "the page loads something from elsewhere")
    intervals = [int(n) for n in re.findall(r"setInterval\(.*?,(\d+)\);", page, re.S)]
    check(intervals and min(intervals) >= 1000, f"the page refreshes every {intervals} ms")
    over_unix = query(sock, "GET / HTTP/1.0\r\n")
    check(over_unix.startswith("HTTP/1.0 200") and "<title>ringrelay status</title>" in over_unix,
          "GET / on the stats socket")

    dom = chromium(ctx, "--dump-dom", f"http://127.0.0.1:{admin}/")
    rows = Rows()
    rows.feed(dom)
    want = {keys["up"]: "up", keys["dead"]: "down", keys["drained"]: "drain",
            "web": "enabled", "internal": "disabled"}
    got = {k: (v["state"].strip(), v["class"]) for k, v in rows.rows.items()}
    check(got == {k: (v, v) for k, v in want.items()}, f"rendered rows: {got}")
    check(rows.readiness.strip() == "READY", f"readiness: {rows.readiness!r}")

    shot = os.path.join(ctx.tmpdir, "status.png")
    chromium(ctx, "--window-size=1200,720", "--hide-scrollbars", f"--screenshot={shot}",
             f"http://127.0.0.1:{admin}/")
    with open(shot, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG")
    if os.environ.get("RINGRELAY_SCREENSHOT"):
        shutil.copy(shot, os.environ["RINGRELAY_SCREENSHOT"])
