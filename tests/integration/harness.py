"""Process and port plumbing for the integration suite: child processes,
the relay under test, loopback ports, and bounded waits. The peers it
talks to are in peers/, the shared test helpers in kit/."""

import glob
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

# The repository's top directory (tests/integration/../..).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:")


class TestFailure(Exception):
    """An assertion about the relay or a peer did not hold."""


class TestSkip(Exception):
    """The test cannot run here; the message says why."""


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def wait_until(predicate, timeout, what, interval=0.01):
    """Poll predicate until it returns a true value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TestFailure(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# Ports are taken below the ephemeral range (32768 and up on this machine), so
# an outgoing connection can never grab one between the check and the bind.
_PORT_LOW, _PORT_HIGH = 20000, 32000
_ports_given = set()


def _port_is_free(port):
    """True if nothing is bound to port on any address, v4 or v6."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A TCP port free on every loopback address and not handed out before."""
    for _ in range(500):
        port = random.randrange(_PORT_LOW, _PORT_HIGH)
        if port not in _ports_given and _port_is_free(port):
            _ports_given.add(port)
            return port
    raise TestFailure("no free TCP port found below 32000")


def _listening_ports(path):
    ports = set()
    try:
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    except FileNotFoundError:
        pass
    return ports


def is_listening(port):
    """True if some socket on this host listens on TCP port, v4 or v6."""
    return port in _listening_ports("/proc/net/tcp") or port in _listening_ports("/proc/net/tcp6")


def cpu_seconds(pid):
    """utime + stime of every thread of pid, in seconds."""
    total = 0
    for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            fields = read_text(stat).rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def tail(text, lines=8):
    return " | ".join(text.strip().splitlines()[-lines:])


class Proc:
    """A child process whose stdout and stderr go to files in the test's dir.

    stop() sends SIGTERM and waits; kill() is the last resort in cleanup."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(workdir, f"{name}.out")
        self.err_path = os.path.join(workdir, f"{name}.err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          env=env, cwd=workdir, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stdout(self):
        return read_text(self.out_path)

    def stderr(self):
        return read_text(self.err_path)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal the process and wait up to timeout; return its status or None."""
        if self.alive():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
        return self.wait(timeout)

    def kill(self):
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(5)


class Relay(Proc):
    """The relay under test, started with the suite's io back end and waited
    for until it logs `ready:`."""

    def __init__(self, ctx, args, name="relay", wrapper=(), binary=None):
        argv = list(wrapper) + [binary or ctx.binary] + list(args)
        if ctx.io and "--io" not in args:
            argv += ["--io", ctx.io]
        super().__init__(name, argv, ctx.tmpdir, env=ctx.relay_env())
        self.ctx = ctx
        self.checked = False
        # Registered before finish(), so it runs after it: a successor an
        # upgrade started is in the relay's process group, and outlives the
        # relay when a test fails before it stops the successor itself.
        ctx.on_cleanup(self.kill_group)

    def kill_group(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait_ready(self, timeout=10):
        def ready():
            if "ready:" in self.stderr():
                return True
            if not self.alive():
                raise TestFailure(f"{self.name} exited with status {self.popen.returncode} "
                                  f"before ready: {tail(self.stderr())}")
            return False
        wait_until(ready, timeout, f"{self.name} to log 'ready:'")
        return self

    def check_alive(self):
        check(self.alive(), f"{self.name} died (status {self.popen.returncode}): "
                            f"{tail(self.stderr())}")

    def sanitizer_report(self):
        text = self.stderr()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i != -1:
                start = text.rfind("\n", 0, i) + 1
                return text[start:start + 400].replace("\n", " | ")
        return None

    def finish(self, sig=signal.SIGINT, timeout=10):
        """Stop with sig and check a clean exit (status 0, no sanitizer report).
        Returns how long the exit took. SIGINT stops at once; SIGTERM drains,
        which the drain tests ask for."""
        if self.checked:
            return 0.0
        self.checked = True
        was_alive = self.alive()
        start = time.monotonic()
        status = self.stop(sig, timeout)
        elapsed = time.monotonic() - start
        if status is None:
            self.kill()
            raise TestFailure(f"{self.name} did not exit within {timeout}s of "
                              f"{signal.Signals(sig).name}")
        report = self.sanitizer_report() if self.ctx.sanitizer else None
        if report:
            raise TestFailure(f"{self.name} sanitizer report: {report}")
        if not was_alive:
            raise TestFailure(f"{self.name} had died with status {status}: {tail(self.stderr())}")
        check(status == 0, f"{self.name} exited {status} on {signal.Signals(sig).name}: "
                           f"{tail(self.stderr())}")
        return elapsed


    def exited(self, timeout=10):
        """Wait for an exit the relay makes on its own (a drain ending, an
        upgrade handing over) and check it like finish()."""
        self.checked = True
        status = self.wait(timeout)
        if status is None:
            self.kill()
            raise TestFailure(f"{self.name} did not exit within {timeout}s")
        report = self.sanitizer_report() if self.ctx.sanitizer else None
        if report:
            raise TestFailure(f"{self.name} sanitizer report: {report}")
        check(status == 0, f"{self.name} exited {status}: {tail(self.stderr())}")


def start_relay(ctx, args, name="relay", ready_timeout=10, wrapper=(), binary=None):
    """The relay (binary: another path to run it by) started and waited for."""
    relay = Relay(ctx, args, name, wrapper, binary)
    ctx.on_cleanup(relay.finish)
    return relay.wait_ready(ready_timeout)


def no_uring_tool(ctx):
    """build/tools/no_uring (runs a program with io_uring_setup failing), built
    from tests/tools/no_uring.c into the session dir if make has not."""
    built = os.path.join(REPO, "build", "tools", "no_uring")
    if os.access(built, os.X_OK):
        return built
    source = os.path.join(REPO, "tests", "tools", "no_uring.c")
    target = os.path.join(ctx.session_dir, "no_uring")
    if not os.access(target, os.X_OK) and os.path.exists(source) and shutil.which("cc"):
        subprocess.run(["cc", "-O2", "-o", target, source], check=False, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not os.access(target, os.X_OK):
        raise TestSkip("no build/tools/no_uring and it could not be built")
    return target


def parse_version(text):
    return re.search(r"\d+\.\d+(\.\d+)?", text)
