"""The Debian package (make deb), as an operator meets it: apt-get installs
it, the installed binary, unit and configuration work, the relay runs in
front of nginx, an upgrade keeps an edited conffile, and a purge takes
everything the package and its scripts made. Run once by make test-deb
(run.py --suite package), as root; a machine that already has ringrelay
installed (the package, make install, or its user) is left alone: the test
says so and is skipped, never counted as passed."""

import glob
import os
import grp
import pwd
import shutil
import subprocess

import harness
from harness import REPO, check
from kit import config as cfg
from kit.tls import expect_body, https_get
from peers.daemons import Nginx

from .base import case

# What the package and its maintainer scripts put on the machine; after a
# purge none of it may be left.
PATHS = ["/usr/bin/ringrelay", "/lib/systemd/system/ringrelay.service",
         "/etc/ringrelay", "/etc/logrotate.d/ringrelay", "/usr/share/ringrelay",
         "/usr/share/doc/ringrelay", "/usr/share/man/man8/ringrelay.8.gz", "/var/log/ringrelay",
         "/etc/systemd/system/multi-user.target.wants/ringrelay.service",
         "/var/lib/systemd/deb-systemd-helper-enabled/ringrelay.service.dsh-also",
         "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/ringrelay.service"]
CONF = "/etc/ringrelay/ringrelay.yaml"
ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=ENV, **kw)


def ok(argv, what, timeout=120):
    p = run(argv, timeout)
    check(p.returncode == 0, f"{what}: exit {p.returncode}: {harness.tail(p.stdout + p.stderr)}")
    return p.stdout


def installed_version():
    """The package's version if dpkg has it installed, else None."""
    p = run(["dpkg-query", "-W", "-f", "${Status} ${Version}", "ringrelay"])
    if p.returncode != 0 or not p.stdout.startswith("install ok installed"):
        return None
    return p.stdout.split()[-1]


def package_state():
    p = run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "ringrelay"])
    return p.stdout.strip() if p.returncode == 0 else "unknown"


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def what_is_there():
    """What of ringrelay this machine has before the test: it is not ours to
    replace or purge."""
    found = [p for p in PATHS if os.path.lexists(p)]
    if package_state() != "unknown":
        found.append(f"the package (dpkg: {package_state()})")
    if user_exists("ringrelay") or group_exists("ringrelay"):
        found.append("the user or group ringrelay")
    return found


def relays_running():
    """Processes running the installed binary."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/exe").startswith("/usr/bin/ringrelay"):
                pids.append(int(pid))
        except OSError:
            pass
    return pids


def upgrade_deb(ctx, deb, version):
    """The same package as a newer version, so that dpkg runs an upgrade
    (prerm upgrade, postinst configure OLD) over the installed one."""
    tree = os.path.join(ctx.tmpdir, "repack")
    ok(["dpkg-deb", "-R", deb, tree], "dpkg-deb -R")
    control = os.path.join(tree, "DEBIAN", "control")
    text = harness.read_text(control).replace(f"Version: {version}\n",
                                              f"Version: {version}+test1\n")
    check(f"Version: {version}+test1\n" in text, f"no Version: {version} in {control}")
    with open(control, "w") as f:
        f.write(text)
    out = os.path.join(ctx.tmpdir, "debs", f"ringrelay_{version}+test1_amd64.deb")
    ok(["dpkg-deb", "--root-owner-group", "-b", tree, out], "dpkg-deb -b")
    return out


def purge(ctx):
    """Cleanup: whatever the test got to, the package is purged."""
    if package_state() != "unknown":
        run(["dpkg", "--purge", "ringrelay"], timeout=120)


@case("debian_package_installs_runs_upgrades_purges", per_io=False, budget=420,
      sanitized=False, suite="package")
def package(ctx):
    for tool in ("dpkg-buildpackage", "lintian", "apt-get", "systemd-analyze", "nginx"):
        if not shutil.which(tool):
            raise harness.TestSkip(f"{tool} is not installed (scripts/deps.sh installs it)")
    if os.geteuid() != 0:
        raise harness.TestSkip("installing a package takes root")
    there = what_is_there()
    if there:
        raise harness.TestSkip("ringrelay is installed on this machine already ("
                               + ", ".join(there) + "); the test will not replace it")

    tmp_before = set(os.listdir("/tmp"))
    out = ok(["make", "-s", "deb"], "make deb", timeout=300)
    left = set(os.listdir("/tmp")) - tmp_before
    check(not left, f"make deb left {sorted(left)} in /tmp")
    version = harness.read_text(os.path.join(REPO, "debian", "changelog")).split()[1].strip("()")
    built = glob.glob(os.path.join(REPO, "build", "deb", f"ringrelay_{version}_*.deb"))
    check(len(built) == 1, f"make deb made {built}: {out}")
    check(glob.glob(os.path.join(REPO, "build", "deb", f"ringrelay-dbgsym_{version}_*.deb")),
          "make deb made no -dbgsym package")
    lintian = harness.read_text(os.path.join(REPO, "build", "deb", "lintian.txt"))
    check(not [line for line in lintian.splitlines() if line.startswith("E:")],
          f"lintian: {lintian}")
    readme = harness.read_text(os.path.join(REPO, "README.md"))
    unlisted = [line for line in lintian.splitlines() if line.startswith("W:")
                and f"`{line.split()[2]}`" not in readme]
    check(not unlisted, f"lintian warnings the README does not list: {unlisted}")
    # apt's own user (_apt) reads the file: a directory it may enter.
    debs = os.path.join(ctx.tmpdir, "debs")
    os.makedirs(debs)
    for d in (ctx.tmpdir, debs):
        os.chmod(d, 0o755)
    deb = shutil.copy(built[0], debs)

    ctx.on_cleanup(lambda: purge(ctx))
    ok(["apt-get", "install", "-y", "-q", deb], "apt-get install ./ringrelay.deb")
    check(installed_version() == version, f"dpkg has {package_state()} {installed_version()}")

    # What an operator runs first.
    got = ok(["ringrelay", "--version"], "ringrelay --version").strip()
    check(got == f"ringrelay {version}", f"ringrelay --version says {got!r}, want {version}")
    ok(["/usr/bin/ringrelay", "-t", "-c", CONF], f"ringrelay -t -c {CONF}")
    ok(["systemd-analyze", "verify", "/lib/systemd/system/ringrelay.service"],
       "systemd-analyze verify of the installed unit")
    wants = "/etc/systemd/system/multi-user.target.wants/ringrelay.service"
    check(os.path.islink(wants), "the unit is not enabled for boot (no multi-user.target.wants link)")
    check(relays_running() == [], f"installing started the relay: {relays_running()}")
    for path in ("/usr/share/man/man8/ringrelay.8.gz", "/etc/logrotate.d/ringrelay",
                 "/usr/share/ringrelay/upgrade.sh",
                 "/usr/share/ringrelay/deploy/prometheus/ringrelay.rules.yml",
                 "/usr/share/ringrelay/deploy/grafana/ringrelay.json"):
        check(os.path.exists(path), f"the package has no {path}")
    user = pwd.getpwnam("ringrelay")
    check(user.pw_uid < 1000 and user.pw_shell.endswith("nologin"),
          f"ringrelay is not a system user: {user}")
    st = os.stat("/var/log/ringrelay")
    check(st.st_uid == user.pw_uid, "/var/log/ringrelay does not belong to ringrelay")
    conffiles = ok(["dpkg-query", "-W", "-f", "${Conffiles}", "ringrelay"], "dpkg-query")
    check(CONF in conffiles, f"{CONF} is not a conffile: {conffiles}")

    # The installed binary, in front of nginx, for one relayed request.
    nginx = Nginx(ctx, ctx.session_dir)
    port = harness.free_port()
    conf = cfg.write(ctx, cfg.document(
        [cfg.listener("public", port, default_backend="gateway")],
        [cfg.backend("gateway", [nginx.port4], proxy_protocol="v2")],
        stats_socket=os.path.join(ctx.tmpdir, "stats.sock")))
    relay = harness.start_relay(ctx, ["-c", conf], "installed", binary="/usr/bin/ringrelay")
    status, body, _ = https_get(ctx, ("127.0.0.1", port), "127.0.0.2")
    expect_body(status, body, "127.0.0.2", "the installed relay")
    relay.finish()

    # An operator edits the conffile; an upgrade keeps the edit.
    text = harness.read_text(CONF)
    check("drain_timeout: 30s" in text, f"{CONF} has no drain_timeout: 30s")
    with open(CONF, "w") as f:
        f.write(text.replace("drain_timeout: 30s", "drain_timeout: 20s # edited"))
    newer = upgrade_deb(ctx, deb, version)
    ok(["apt-get", "install", "-y", "-q", newer], "apt-get install (upgrade)")
    check(installed_version() == f"{version}+test1",
          f"after the upgrade dpkg has {installed_version()}")
    check("drain_timeout: 20s # edited" in harness.read_text(CONF),
          "the upgrade replaced the edited conffile")
    left = glob.glob("/etc/ringrelay/*.dpkg-*") + glob.glob("/etc/ringrelay/*.ucf-*")
    check(not left, f"the upgrade left {left}")
    ok(["/usr/bin/ringrelay", "-t", "-c", CONF], "ringrelay -t on the edited file")
    check(relays_running() == [], f"upgrading started the relay: {relays_running()}")

    # Remove keeps the configuration; purge takes everything.
    ok(["apt-get", "remove", "-y", "-q", "ringrelay"], "apt-get remove")
    check(not os.path.exists("/usr/bin/ringrelay"), "remove left /usr/bin/ringrelay")
    check(os.path.exists(CONF), "remove took the configuration (purge should)")
    ok(["apt-get", "purge", "-y", "-q", "ringrelay"], "apt-get purge")
    check(package_state() == "unknown" or package_state().startswith("un"),
          f"after the purge dpkg has {package_state()}")
    left = [p for p in PATHS if os.path.lexists(p)]
    check(not left, f"the purge left {left}")
    check(not user_exists("ringrelay") and not group_exists("ringrelay"),
          "the purge left the user or group ringrelay")
