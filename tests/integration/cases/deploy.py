"""deploy/ as shipped: every file is accepted by the tool that reads it
(BIRD, nft, promtool, systemd-analyze), make install puts the tree under
share/ringrelay/deploy with its paths set, and each script refuses bad
input with one line and a non-zero status. The fleet tests (fleet.py) run
the same files for real."""

import os
import shutil
import subprocess

import harness
from harness import REPO, check
from peers.netns import Namespace

from .base import case

DEPLOY = os.path.join(REPO, "deploy")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


@case("deploy_files_are_valid_and_installed", per_io=False, sanitized=False)
def files(ctx):
    for tool in ("bird", "nft", "promtool", "systemd-analyze"):
        if not shutil.which(tool):
            raise harness.TestSkip(f"{tool} is not installed (scripts/deps.sh installs it)")
    for conf in ("relay.conf", "router.conf"):
        p = run(["bird", "-p", "-c", os.path.join(DEPLOY, "bird", conf)])
        check(p.returncode == 0, f"bird -p {conf}: {p.stderr}")
    p = run(["promtool", "check", "config",
             os.path.join(DEPLOY, "prometheus", "ringrelay-fleet.yml")])
    check(p.returncode == 0, f"promtool: {p.stdout} {p.stderr}")
    ns = Namespace(ctx, "dep")
    p = run(ns.prefix + ["nft", "-c", "-D", "VIP=192.0.2.10", "-D", "PORT=443", "-f",
                         os.path.join(DEPLOY, "nftables", "ringrelay-lb.nft")])
    check(p.returncode == 0, f"nft -c ringrelay-lb.nft: {p.stderr}")

    dest = os.path.join(ctx.tmpdir, "root")
    mode = os.path.basename(os.path.dirname(os.path.realpath(ctx.binary)))
    p = run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr", f"MODE={mode}"],
            cwd=REPO)
    check(p.returncode == 0, f"make install: {p.stderr}")
    share = os.path.join(dest, "usr", "share", "ringrelay", "deploy")
    for path in ("bird/relay.conf", "bird/router.conf", "bird/ringrelay-announce",
                 "bird/ringrelay-nexthops", "bird/ringrelay-announce.service",
                 "nftables/ringrelay-lb.nft", "nftables/ringrelay-lb-members",
                 "nftables/ringrelay-lb-members.service", "prometheus/ringrelay-fleet.yml",
                 "prometheus/ringrelay.rules.yml", "prometheus/ringrelay.rules.test.yml",
                 "grafana/ringrelay.json"):
        check(os.path.exists(os.path.join(share, path)), f"make install did not put {path}")
    for script in ("bird/ringrelay-announce", "bird/ringrelay-nexthops",
                   "nftables/ringrelay-lb-members"):
        check(os.access(os.path.join(share, script), os.X_OK), f"{script} is not executable")
    man = os.path.join(ctx.tmpdir, "man", "man8")
    os.makedirs(man)
    shutil.copy(os.path.join(REPO, "man", "ringrelay.8"), man)
    env = dict(os.environ, MANPATH=os.path.dirname(man))
    for unit in ("bird/ringrelay-announce.service", "nftables/ringrelay-lb-members.service"):
        text = harness.read_text(os.path.join(share, unit))
        check("ExecStart=/usr/share/ringrelay/deploy/" in text, f"{unit}: {text}")
        # Verified where it was installed: its ExecStart points into dest.
        local = os.path.join(ctx.tmpdir, os.path.basename(unit))
        with open(local, "w") as f:
            f.write(text.replace("/usr/share/ringrelay/", f"{dest}/usr/share/ringrelay/"))
        v = run(["systemd-analyze", "verify", local], env=env)
        check(v.returncode == 0 and not v.stderr.strip(), f"verify {unit}: {v.stderr}")


@case("deploy_scripts_refuse_bad_input", per_io=False, sanitized=False)
def scripts(ctx):
    """One line naming the problem and status 2 (usage) or 1 (the world is
    not as it needs to be); nothing is changed."""
    ns = Namespace(ctx, "dps")
    members = os.path.join(DEPLOY, "nftables", "ringrelay-lb-members")
    announce = os.path.join(DEPLOY, "bird", "ringrelay-announce")
    nexthops = os.path.join(DEPLOY, "bird", "ringrelay-nexthops")
    for argv, status, words in (
            ([members], 2, "usage: ringrelay-lb-members"),
            ([members, "relay-1.example"], 2, "'relay-1.example': expected an IPv4 address"),
            ([members, "-x", "10.0.0.1"], 2, "usage:"),
            ([members, "10.0.0.1:9100"], 1, "no map ip ringrelay_lb buckets: load "
                                            "ringrelay-lb.nft first"),
            ([announce, "http://a/ready", "http://b/ready"], 2, "usage: ringrelay-announce"),
            ([nexthops], 2, "usage: ringrelay-nexthops")):
        p = run(ns.prefix + ["sh", *argv])
        check(p.returncode == status and words in p.stderr and p.stderr.count("\n") <= 1,
              f"{' '.join(os.path.basename(a) for a in argv)}: exit {p.returncode}, "
              f"{p.stderr!r}")
