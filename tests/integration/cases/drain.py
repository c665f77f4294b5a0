"""Stopping without losing anyone: SIGTERM drains (no new connections,
open ones finish, exit 0), the drain deadline resets what is left, and
SIGUSR2 hands over to a new process with zero refused connections while a
client keeps connecting at a steady rate."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import check
from kit import config as cfg
from kit.stats import stats_json
from peers.helper import Helper, start_echo
from peers.proxy_header import read_header_then

from .base import case, client, listener, relay

STEADY_CONNS = 20
STEADY_PIECES = 30
STEADY_GAP = 0.1  # seconds: each connection lasts about 3 s


def steady(ctx, port):
    """STEADY_CONNS connections that each trickle bytes for about 3 s."""
    st = Helper(ctx, "steady", ["steady-client", "--target", f"127.0.0.1:{port}",
                                "--conns", str(STEADY_CONNS),
                                "--pieces", str(STEADY_PIECES), "--piece", "1000",
                                "--gap", str(STEADY_GAP), "--timeout", "30"])
    st.wait_json("connected", 10)
    return st


def refused(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


@case("drain_lets_open_connections_finish")
def drain(ctx):
    """SIGTERM while 20 connections are mid-transfer: the port stops
    accepting at once, every transfer completes byte for byte, then the
    relay exits 0."""
    port = harness.free_port()
    rl = harness.start_relay(ctx, ["--listen", f"127.0.0.1:{port}", "--backend",
                                   f"127.0.0.1:{start_echo(ctx).port}", "--drain-timeout",
                                   "20s"])
    st = steady(ctx, port)
    start = time.monotonic()
    rl.popen.send_signal(signal.SIGTERM)
    harness.wait_until(lambda: "SIGTERM: draining" in rl.stderr(), 5, "the drain to start")
    check(not st.json_lines()[-1].get("results"), "the transfers ended before the signal")
    harness.wait_until(lambda: refused(port), 5, "the port to refuse new connections")
    check(rl.alive(), "the relay exited with transfers in flight")
    res = st.wait_json("results", 40)["results"]
    check(res["n_failed"] == 0, f"{res['n_failed']} transfers failed: {res['failed']}")
    rl.exited(10)
    check("drained: every connection finished" in rl.stderr(), "no 'drained' line")
    check("(0 open at exit)" in rl.stderr(), f"exit line: {rl.stderr()[-400:]}")
    ctx.note(f"{STEADY_CONNS} transfers finished {time.monotonic() - start:.1f}s after SIGTERM")


@case("drain_deadline_resets_the_rest")
def deadline(ctx):
    """A connection that never ends: reset when drain_timeout runs out, and
    the relay still exits 0."""
    be = listener(ctx)
    port = harness.free_port()
    rl = harness.start_relay(ctx, ["--listen", f"127.0.0.1:{port}", "--backend",
                                   f"127.0.0.1:{be.port}", "--drain-timeout", "500ms"])
    c = client(ctx, ("127.0.0.1", port))
    c.sendall(b"held")
    read_header_then(be.accept(), b"held")
    start = time.monotonic()
    took = rl.finish(signal.SIGTERM, timeout=10)
    check(took >= 0.4, f"exited after {took:.2f}s, before the deadline")
    c.settimeout(2)
    try:
        got = c.recv(1)
        how = "EOF" if got == b"" else f"data {got!r}"
    except ConnectionResetError:
        how = "reset"
    check(how == "reset", f"the held client saw {how}")
    check("drain: 1 connections still open: resetting them" in rl.stderr(), "no reset line")
    ctx.note(f"exited {time.monotonic() - start:.2f}s after SIGTERM")


def running(pid):
    """Whether pid runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@case("upgrade_sigusr2_loses_nothing", budget=90)
def upgrade(ctx):
    """scripts/upgrade.sh: SIGUSR2 starts the binary again beside the running
    one; once ready it takes over and the old one drains. A client opening 200 connections a
    second and 20 long transfers see no refusal, reset or short echo."""
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    port = harness.free_port()
    rl = cfg.start(ctx, cfg.document([cfg.listener("web", port)],
                                     [cfg.backend("app", [start_echo(ctx).port])],
                                     stats_socket=sock, drain_timeout="20s"))
    old = rl.pid
    rate = Helper(ctx, "rate", ["rate-client", "--target", f"127.0.0.1:{port}",
                                "--rate", "200"])
    rate.wait_json("started", 10)
    st = steady(ctx, port)
    script = os.path.join(harness.REPO, "scripts", "upgrade.sh")
    up = subprocess.run(["sh", script, str(old)], capture_output=True, text=True, timeout=60)
    check(up.returncode == 0, f"upgrade.sh exited {up.returncode}: {up.stderr} {up.stdout}")
    new_pid = int(re.search(r"new process (\d+) \(", up.stdout).group(1))
    ctx.on_cleanup(lambda: os.kill(new_pid, signal.SIGKILL) if running(new_pid) else None)
    check(f"done: {old} drained and exited, {new_pid} serves" in up.stdout, up.stdout)
    check(rl.stderr().count("ready:") == 2, "two ready lines")
    rl.exited(30)
    res = st.wait_json("results", 40)["results"]
    check(res["n_failed"] == 0, f"{res['n_failed']} long transfers failed: {res['failed']}")
    time.sleep(0.5)  # the rate client keeps going against the new process alone
    rate.stop(signal.SIGTERM, 15)
    done = rate.wait_json("done", 15)["done"]
    check(done["failed"] == 0 and done["ok"] == done["opened"],
          f"{done['ok']} of {done['opened']} round trips ok: {done['errors']}")
    check(running(new_pid), "the new process is gone")
    # The new process owns the stats socket now.
    check(stats_json(sock)["process"]["uptime_ms"] < 60000, "stats socket")
    os.kill(new_pid, signal.SIGINT)
    deadline = time.monotonic() + 10
    while running(new_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    check(not running(new_pid), "the new process did not stop on SIGINT")
    check(not os.path.exists(sock), "the stats socket was left behind")
    ctx.note(f"{done['ok']} connections at 200/s and {STEADY_CONNS} transfers across the "
             f"upgrade, none lost")


def sigusr2_successor(ctx, rl):
    """Sends rl SIGUSR2 and waits until its successor has told it to stop;
    returns the successor's pid (killed at cleanup if it still runs)."""
    rl.popen.send_signal(signal.SIGUSR2)
    harness.wait_until(lambda: "SIGTERM from successor" in rl.stderr(), 15,
                       "the successor to take over")
    new = int(re.search(r"SIGTERM from successor (\d+)", rl.stderr()).group(1))
    ctx.on_cleanup(lambda: os.kill(new, signal.SIGKILL) if running(new) else None)
    return new


def listening_sockets(pid, ports):
    """{port: sorted socket inodes} of the TCP sockets pid holds that listen
    on one of ports."""
    inodes = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                port = int(cols[1].rsplit(":", 1)[1], 16)
                if cols[3] == "0A" and port in ports:
                    inodes[cols[9]] = port
    held = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        ino = link[len("socket:["):-1] if link.startswith("socket:[") else None
        if ino in inodes:
            held.setdefault(inodes[ino], []).append(ino)
    return {port: sorted(v) for port, v in held.items()}


@case("upgrade_hands_down_its_listening_sockets", per_io=False, budget=90)
def upgrade_sockets(ctx):
    """SIGUSR2: the successor takes over the very sockets its predecessor
    listens on (two workers' for each bind, and the admin listener's), so
    the predecessor's close leaves them open and resets nothing waiting in
    their queues. A bind the new configuration no longer names is closed
    with the predecessor: its port refuses after the upgrade."""
    web, gone, admin = harness.free_port(), harness.free_port(), harness.free_port()
    echo = start_echo(ctx).port

    def doc(*listeners):
        return cfg.document([cfg.listener(name, port) for name, port in listeners],
                            [cfg.backend("app", [echo])], workers=2,
                            admin={"listen": f"127.0.0.1:{admin}"})
    rl = cfg.start(ctx, doc(("web", web), ("gone", gone)))
    ports = {web, gone, admin}
    before = listening_sockets(rl.pid, ports)
    check({p: len(v) for p, v in before.items()} == {web: 2, gone: 2, admin: 1},
          f"the first process listens on {before}")
    cfg.write(ctx, doc(("web", web)))
    new = sigusr2_successor(ctx, rl)
    rl.exited(30)
    after = listening_sockets(new, ports)
    check(after == {web: before[web], admin: before[admin]},
          f"the successor listens on {after}, its predecessor did on {before}")
    check(f"upgrade: took 3 of pid {rl.pid}'s 5 listening sockets (the others' addresses are "
          f"no longer configured)" in rl.stderr(), rl.stderr()[-800:])
    check(refused(gone), f"port {gone}, no longer configured, still accepts")
    echoed(web)
    os.kill(new, signal.SIGINT)
    wait_gone(new, "the successor to stop on SIGINT")
    ctx.note(f"sockets {before[web] + before[admin]} listened in {rl.pid}, then in {new}")


UPGRADE_SH = os.path.join(harness.REPO, "scripts", "upgrade.sh")


def install_tree(ctx):
    """opt/v1/ringrelay and opt/v2/ringrelay (two copies of the binary under
    test) and opt/bin/ringrelay, a symlink to v1, as a deployment that
    flips a `current` link has them. Returns (link, v1, v2)."""
    root = os.path.join(ctx.tmpdir, "opt")
    paths = []
    for v in ("v1", "v2"):
        os.makedirs(os.path.join(root, v))
        paths.append(os.path.join(root, v, "ringrelay"))
        shutil.copy2(ctx.binary, paths[-1])
    os.makedirs(os.path.join(root, "bin"))
    link = os.path.join(root, "bin", "ringrelay")
    os.symlink(paths[0], link)
    return link, paths[0], paths[1]


def point(link, target):
    """Switches the symlink at once, as `ln -sfn` and mv would."""
    os.symlink(target, link + ".new")
    os.replace(link + ".new", link)


def upgrade_sh(ctx, pid):
    up = subprocess.run(["sh", UPGRADE_SH, str(pid)], capture_output=True, text=True,
                        timeout=60)
    found = re.search(r"new process (\d+) \(", up.stdout)
    if found:
        new = int(found.group(1))
        ctx.on_cleanup(lambda: os.kill(new, signal.SIGKILL) if running(new) else None)
    return up, int(found.group(1)) if found else None


def linked_relay(ctx, link):
    """A relay started by the symlink's path, with a stats socket, in front
    of the echo backend; returns it and its port."""
    port = harness.free_port()
    sock = os.path.join(ctx.tmpdir, "stats.sock")
    doc = cfg.document([cfg.listener("web", port)], [cfg.backend("app", [start_echo(ctx).port])],
                       stats_socket=sock, drain_timeout="10s")
    rl = harness.start_relay(ctx, ["-c", cfg.write(ctx, doc)], binary=link)
    rl.sock = sock
    return rl, port


def echoed(port, data=b"still serving"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while len(got) < len(data) + 1:
            piece = c.recv(4096)
            if not piece:
                break
            got += piece
    check(got == data, f"echo through the relay: {got!r}")


def wait_gone(pid, what):
    harness.wait_until(lambda: not running(pid), 30, what)


@case("upgrade_follows_a_switched_symlink", per_io=False, budget=90)
def upgrade_symlink(ctx):
    """Started as bin/ringrelay -> v1, the link switched to v2: upgrade.sh
    starts v2 (the path as given, resolved at upgrade time), the log names
    the path, the binary and its version, and upgrade.sh says which binary
    each side runs. Upgraded again with nothing new installed, upgrade.sh
    says it was a restart. (Old main re-ran v1: /proc/NEW/exe was v1.)"""
    link, v1, v2 = install_tree(ctx)
    rl, port = linked_relay(ctx, link)
    check(os.readlink(f"/proc/{rl.pid}/exe") == v1, "the relay does not run v1")
    point(link, v2)
    up, new = upgrade_sh(ctx, rl.pid)
    check(up.returncode == 0 and new, f"upgrade.sh exited {up.returncode}: {up.stderr} {up.stdout}")
    exe = os.readlink(f"/proc/{new}/exe")
    check(exe == v2, f"the new process runs {exe}, want {v2}")
    log = rl.stderr()
    check(f"SIGUSR2: started {link} ({v2}) as pid {new}" in log, f"no start line: {log}")
    check(f"upgrade: serving beside pid {rl.pid} as {v2} (ringrelay " in log, f"no line: {log}")
    check(f"({v2}, ringrelay" in up.stdout and f"({v1}, ringrelay" in up.stdout,
          f"upgrade.sh does not name both binaries: {up.stdout}")
    check("same binary" not in up.stderr, f"a real upgrade called a restart: {up.stderr}")
    rl.exited(30)
    echoed(port)
    again, newer = upgrade_sh(ctx, new)
    check(again.returncode == 0 and newer, f"upgrade.sh exited {again.returncode}: {again.stderr}")
    check("same binary and version" in again.stderr, f"no restart note: {again.stderr!r}")
    check(os.readlink(f"/proc/{newer}/exe") == v2, "the restart changed binaries")
    wait_gone(new, "the upgraded process to drain and exit")
    echoed(port)
    os.kill(newer, signal.SIGINT)
    wait_gone(newer, "the last process to stop on SIGINT")
    ctx.note(f"{rl.pid} ran v1, {new} v2 after the link switched, {newer} v2 again (a restart)")


@case("upgrade_that_fails_is_reaped_and_named", per_io=False, budget=90)
def upgrade_fails(ctx):
    """The link switched to a binary that exits 3: upgrade.sh fails naming
    that process and its status, the relay reaps it (no zombie), logs how it
    ended and serves on; the next upgrade, to v2, is told apart exactly and
    succeeds. (Old main left a zombie, logged nothing, and the next
    upgrade.sh took the zombie for the new process.)"""
    link, _, v2 = install_tree(ctx)
    bad = os.path.join(os.path.dirname(os.path.dirname(link)), "bad")
    os.makedirs(bad)
    with open(os.path.join(bad, "ringrelay"), "w") as f:
        f.write("#!/bin/sh\nexit 3\n")
    os.chmod(os.path.join(bad, "ringrelay"), 0o755)
    rl, port = linked_relay(ctx, link)
    point(link, os.path.join(bad, "ringrelay"))
    up, _ = upgrade_sh(ctx, rl.pid)
    check(up.returncode == 1, f"upgrade.sh exited {up.returncode}: {up.stdout} {up.stderr}")
    line = re.compile(r"upgrade: successor (\d+) exited with status 3 before it was ready; "
                      r"still serving")
    harness.wait_until(lambda: line.search(rl.stderr()), 5, "the relay to log the failed one")
    failed = int(line.search(rl.stderr()).group(1))
    check(f"the new process {failed} exited with status 3 before it took over; {rl.pid} keeps "
          f"running" in up.stderr, f"upgrade.sh: {up.stderr!r}")
    check(not os.path.exists(f"/proc/{failed}"), f"{failed} was not reaped (a zombie)")
    succ = stats_json(rl.sock)["process"]["successor"]
    check(succ == {"pid": failed, "ended": "exited with status 3"}, f"stats: {succ}")
    echoed(port)
    point(link, v2)
    up, new = upgrade_sh(ctx, rl.pid)
    check(up.returncode == 0 and new and new != failed,
          f"upgrade.sh exited {up.returncode}: {up.stdout} {up.stderr}")
    check(f"done: {rl.pid} drained and exited, {new} serves" in up.stdout, up.stdout)
    rl.exited(30)
    echoed(port)
    os.kill(new, signal.SIGINT)
    wait_gone(new, "the new process to stop on SIGINT")
    ctx.note(f"successor {failed} exited 3 and was reaped; {new} took over after")


@case("upgrade_without_a_pid_names_the_relays_to_choose_from", per_io=False)
def upgrade_which(ctx):
    """Two relays run and upgrade.sh is given no pid: it upgrades neither,
    exits 1 and names both pids with how to tell which one to give."""
    be = listener(ctx)
    relays = [relay(ctx, [("127.0.0.1", harness.free_port())], ("127.0.0.1", be.port),
                    name=f"relay{i}") for i in range(2)]
    script = os.path.join(harness.REPO, "scripts", "upgrade.sh")
    up = subprocess.run(["sh", script], capture_output=True, text=True, timeout=30)
    check(up.returncode == 1, f"upgrade.sh exited {up.returncode}: {up.stderr}")
    for rl in relays:
        check(str(rl.pid) in up.stderr, f"pid {rl.pid} not named: {up.stderr!r}")
        check("SIGUSR2" not in rl.stderr(), f"relay {rl.pid} was upgraded anyway")
    check("give the pid" in up.stderr and "systemctl show -p MainPID" in up.stderr,
          f"no hint: {up.stderr!r}")
