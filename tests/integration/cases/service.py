"""Life under systemd and as root: the unit passes systemd-analyze verify
and make install puts everything in place; sd_notify READY/RELOADING/
STOPPING/STATUS/WATCHDOG reach a socket the test listens on, and a stuck
worker stops the watchdog pings; started as root with a user, the relay
runs as that user with CAP_NET_BIND_SERVICE only and can still bind a
privileged port on reload."""

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import REPO, check
from kit import config as cfg
from peers.helper import start_echo

from .base import case, client

REQUIRED = ["Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID",
            "LimitNOFILE=", "User=ringrelay", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
            "ProtectSystem=strict", "PrivateTmp=yes", "RuntimeDirectory=ringrelay",
            "io_uring_setup io_uring_enter io_uring_register"]


@case("systemd_unit_verifies_and_installs", per_io=False)
def unit(ctx):
    if not shutil.which("systemd-analyze"):
        raise harness.TestSkip("systemd-analyze is not installed (Debian package systemd)")
    dest = os.path.join(ctx.tmpdir, "root")
    got = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr",
                          f"MODE={os.path.basename(os.path.dirname(os.path.realpath(ctx.binary)))}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    check(got.returncode == 0, f"make install: {got.stderr}")
    for path in ["usr/bin/ringrelay", "lib/systemd/system/ringrelay.service",
                 "usr/share/man/man8/ringrelay.8", "etc/ringrelay/ringrelay.yaml",
                 "usr/share/doc/ringrelay/ringrelay.yaml", "usr/share/ringrelay/upgrade.sh"]:
        check(os.path.exists(os.path.join(dest, path)), f"make install did not put {path}")
    text = harness.read_text(os.path.join(dest, "lib/systemd/system/ringrelay.service"))
    check("/usr/local" not in text and "ExecStart=/usr/bin/ringrelay -c" in text,
          "the unit's paths do not follow PREFIX")
    for want in REQUIRED:
        check(want in text, f"the unit lacks {want}")
    # Verify the unit as shipped, pointed at the binary under test.
    check_dir = os.path.join(ctx.tmpdir, "verify")
    os.makedirs(os.path.join(check_dir, "man", "man8"))
    shutil.copy(os.path.join(REPO, "man", "ringrelay.8"), os.path.join(check_dir, "man", "man8"))
    with open(os.path.join(check_dir, "ringrelay.service"), "w") as f:
        f.write(harness.read_text(os.path.join(REPO, "systemd", "ringrelay.service"))
                .replace("/usr/local/bin/ringrelay", os.path.realpath(ctx.binary)))
    env = dict(os.environ, MANPATH=os.path.join(check_dir, "man"))
    v = subprocess.run(["systemd-analyze", "verify", os.path.join(check_dir, "ringrelay.service")],
                       capture_output=True, text=True, timeout=60, env=env)
    check(v.returncode == 0 and not v.stderr.strip() and not v.stdout.strip(),
          f"systemd-analyze verify: {v.stdout} {v.stderr}")
    # The example configuration the package installs is valid.
    t = subprocess.run([ctx.binary, "-t", "-c", os.path.join(dest, "etc/ringrelay/ringrelay.yaml")],
                       capture_output=True, text=True, timeout=10)
    check(t.returncode == 0, f"-t on the installed config: {t.stderr}")


class Notify:
    """A NOTIFY_SOCKET the relay reports to; a thread collects the messages
    as they come, as systemd would (a unix datagram socket queues only
    net.unix.max_dgram_qlen messages, 10 by default, and then the relay's
    sd_notify would block)."""

    def __init__(self, ctx, name="notify.sock"):
        self.path = os.path.join(ctx.tmpdir, name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()
        ctx.on_cleanup(self.close)

    def _collect(self):
        while not self.closed.is_set():
            try:
                m = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(m)

    def close(self):
        self.closed.set()
        self.thread.join(2)
        self.sock.close()

    def poll(self):
        with self.lock:
            return list(self.messages)

    def wait(self, what, timeout=10, after=0):
        def seen():
            return any(what in m for m in self.poll()[after:])
        harness.wait_until(seen, timeout, f"a notification with {what}")
        return len(self.messages)

    def count(self, what, after=0):
        return sum(what in m for m in self.poll()[after:])


def worker_tids(pid):
    tids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        if harness.read_text(f"/proc/{pid}/task/{tid}/comm").startswith("rr-worker"):
            tids.append(int(tid))
    return tids


@case("sd_notify_lifecycle_and_watchdog")
def notify(ctx):
    """READY=1 with MAINPID and a STATUS line; WATCHDOG=1 while the workers
    run, none while one is stopped (ptrace stops that thread alone), again
    once it runs; RELOADING=1 then READY=1 around SIGHUP; STOPPING=1 on
    SIGTERM."""
    n = Notify(ctx)
    port = harness.free_port()
    path = cfg.write(ctx, cfg.document([cfg.listener("web", port)],
                                       [cfg.backend("app", ["127.0.0.1:9"])]))
    old_env = ctx.relay_env
    ctx.relay_env = lambda: dict(old_env(), NOTIFY_SOCKET=n.path, WATCHDOG_USEC="600000")
    try:
        rl = harness.start_relay(ctx, ["-c", path, "--workers", "2"])
    finally:
        ctx.relay_env = old_env
    n.wait("READY=1")
    ready = next(m for m in n.messages if "READY=1" in m)
    check(f"MAINPID={rl.pid}" in ready, f"ready message: {ready!r}")
    check(any(m.startswith("STATUS=running: 0 connections open, 2 workers") for m in n.messages),
          f"status: {n.messages}")
    mark = n.wait("WATCHDOG=1")
    n.wait("WATCHDOG=1", after=mark)
    # Stop one worker thread only.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    tid = worker_tids(rl.pid)[0]
    PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
    check(libc.ptrace(PTRACE_SEIZE, tid, None, None) == 0, f"ptrace seize: {ctypes.get_errno()}")
    try:
        check(libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0, "ptrace interrupt")
        os.waitpid(tid, getattr(os, "__WALL", 0x40000000))
        time.sleep(0.5)  # let the main thread see a tick missing (its period is 200 ms)
        mark = len(n.poll())
        time.sleep(1.0)
        stalled = n.count("WATCHDOG=1", after=mark)
        check(rl.alive(), "the relay died with a worker stopped")
    finally:
        libc.ptrace(PTRACE_DETACH, tid, None, None)
    check(stalled == 0, f"{stalled} watchdog pings while a worker was stopped")
    check("has not run its timers" in rl.stderr(), "the stuck worker was not logged")
    mark = n.wait("WATCHDOG=1", after=len(n.poll()))
    c = client(ctx, ("127.0.0.1", port))  # the relay still serves
    c.close()
    mark = len(n.poll())
    rl.popen.send_signal(signal.SIGHUP)
    n.wait("RELOADING=1", after=mark)
    n.wait("READY=1", after=mark)
    reload_msgs = [m for m in n.messages[mark:] if "RELOADING=1" in m or "READY=1" in m]
    check("RELOADING=1" in reload_msgs[0], f"order: {reload_msgs}")
    mark = len(n.poll())
    rl.finish(signal.SIGTERM)
    check(n.count("STOPPING=1", after=mark) >= 1, f"no STOPPING=1: {n.messages[mark:]}")
    ctx.note("watchdog pings stopped while one worker was stopped, and resumed")


def status_field(pid, task, field):
    for line in harness.read_text(f"/proc/{pid}/task/{task}/status").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].split()
    return None


def nobody_dir(ctx):
    """For a relay started as root with user nobody: a directory of the
    test's that nobody owns (for the stats socket), the test's directory
    open to it; returns the directory. Skips the test unless run as root."""
    if os.geteuid() != 0:
        raise harness.TestSkip("needs root")
    nobody = pwd.getpwnam("nobody")
    run = os.path.join(ctx.tmpdir, "run")
    os.mkdir(run)
    os.chown(run, nobody.pw_uid, nobody.pw_gid)
    os.chmod(ctx.tmpdir, 0o755)
    return run


@case("runs_as_user_keeps_only_bind_capability")
def privileges(ctx):
    """Started as root with user nobody: every thread runs as nobody, the
    main thread keeps only CAP_NET_BIND_SERVICE (a reload binds port
    1000-1023), the workers have no capability, and it relays."""
    sock_dir = nobody_dir(ctx)
    nobody = pwd.getpwnam("nobody")
    echo = start_echo(ctx).port
    port = harness.free_port()
    low = next(p for p in range(1023, 999, -1) if not harness.is_listening(p))

    def doc(*listeners):
        return cfg.document([cfg.listener("web", port), *listeners],
                            [cfg.backend("app", [echo])],
                            user="nobody", stats_socket=f"{sock_dir}/stats.sock")
    rl = cfg.start(ctx, doc())
    check("running as user nobody" in rl.stderr(), "no line about the user")
    for task in os.listdir(f"/proc/{rl.pid}/task"):
        uids = status_field(rl.pid, task, "Uid")
        check(uids and all(int(u) == nobody.pw_uid for u in uids), f"thread {task}: Uid {uids}")
    main_caps = int(status_field(rl.pid, rl.pid, "CapEff")[0], 16)
    check(main_caps == 1 << 10, f"main thread CapEff {main_caps:#x}, want CAP_NET_BIND_SERVICE")
    for tid in worker_tids(rl.pid):
        caps = int(status_field(rl.pid, tid, "CapPrm")[0], 16)
        check(caps & ~(1 << 10) == 0, f"worker {tid} CapPrm {caps:#x}")
    c = client(ctx, ("127.0.0.1", port))
    c.sendall(b"hi")
    check(c.recv(2) == b"hi", "no echo")
    c.close()
    cfg.write(ctx, doc(cfg.listener("low", low)))
    rl.popen.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: "reload: " in rl.stderr(), 10, "the reload")
    check("applied: 2 listeners" in rl.stderr(), f"reload: {harness.tail(rl.stderr())}")
    c = client(ctx, ("127.0.0.1", low))
    c.sendall(b"lo")
    check(c.recv(2) == b"lo", "no echo on the privileged port")
    c.close()
    rl.finish()
    check(not os.path.exists(f"{sock_dir}/stats.sock"), "the stats socket was left behind")
    ctx.note(f"uid {nobody.pw_uid}, main CapEff 0x400, port {low} bound after the switch")
