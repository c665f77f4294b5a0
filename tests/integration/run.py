#!/usr/bin/env python3
"""ringrelay integration suite: starts the relay binary and real peers (Python
listeners, nginx, HAProxy) on loopback and checks bytes on the wire and logs.

  python3 tests/integration/run.py --binary build/release/ringrelay [--sanitizer]
      [--io uring|epoll|both] [-k SUBSTR] [--keep] [--list]

Prints one line per test and ends with `N passed, N failed[, N skipped]`;
exits 1 if anything failed."""

import sys

sys.dont_write_bytecode = True

import argparse  # noqa: E402
import ctypes  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases  # noqa: E402
from harness import TestFailure, TestSkip  # noqa: E402

IO_BACK_ENDS = ("uring", "epoll")


class TestTimeout(Exception):
    pass


class Context:
    """What one test run gets: the binary, its io back end, a temp dir, and a
    cleanup stack run in reverse whatever the outcome."""

    def __init__(self, opts, io, session_dir):
        self.binary = opts.binary
        self.sanitizer = opts.sanitizer
        self.io = io
        self.session_dir = session_dir
        self.tmpdir = tempfile.mkdtemp(prefix="case-", dir=session_dir)
        self.cleanups = []
        self.notes = []

    def on_cleanup(self, fn):
        self.cleanups.append(fn)

    def note(self, text):
        self.notes.append(text)

    def relay_env(self):
        env = dict(os.environ)
        if self.sanitizer:
            env["ASAN_OPTIONS"] = "detect_leaks=1:" + env.get("ASAN_OPTIONS", "")
            env["UBSAN_OPTIONS"] = "print_stacktrace=1:" + env.get("UBSAN_OPTIONS", "")
        return env

    def run_cleanups(self):
        """Run every cleanup; return the first failure message, if any."""
        failure = None
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep cleaning up, report the first problem
                if failure is None:
                    failure = describe(e)
        self.cleanups = []
        return failure


def describe(e):
    if isinstance(e, (TestFailure, TestSkip, TestTimeout)):
        return str(e)
    frame = traceback.extract_tb(e.__traceback__)[-1]
    return f"{type(e).__name__}: {e} (at {os.path.basename(frame.filename)}:{frame.lineno})"


def io_uring_available():
    """True if this kernel lets us create an io_uring (io_uring_setup, nr 425)."""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 4, params)
    if fd < 0:
        return False
    os.close(fd)
    return True


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time budget")


class Interrupted(Exception):
    pass


INTERRUPTED = []


def _interrupt(signum, frame):
    """SIGTERM or SIGINT (CI giving up, Ctrl-C): the test at hand fails and
    its cleanups run, so no namespace, daemon or relay outlives the run;
    no further test starts. A second signal is ignored while cleaning up."""
    INTERRUPTED.append(signum)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def run_one(test, io, opts, session_dir):
    """Run one test; returns (status, message) with status PASS, FAIL or SKIP."""
    ctx = Context(opts, io, session_dir)
    status, message = "PASS", None
    signal.setitimer(signal.ITIMER_REAL, test.budget)
    try:
        test.fn(ctx)
    except TestSkip as e:
        status, message = "SKIP", str(e)
    except Exception as e:
        status, message = "FAIL", describe(e)
        if opts.verbose:
            traceback.print_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    signal.setitimer(signal.ITIMER_REAL, 60)
    try:
        cleanup_failure = ctx.run_cleanups()
    except TestTimeout:
        cleanup_failure = "cleanup exceeded 60s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if cleanup_failure and status != "FAIL":
        status, message = "FAIL", cleanup_failure
    elif cleanup_failure:
        # A relay that crashed or hit a sanitizer report explains the failure.
        message = f"{message}; then: {cleanup_failure}"
    if status == "PASS" and ctx.notes:
        message = "; ".join(ctx.notes)
    if opts.keep:
        print(f"  kept {ctx.tmpdir}")
    else:
        shutil.rmtree(ctx.tmpdir, ignore_errors=True)
    return status, message


def parse_args(argv):
    p = argparse.ArgumentParser(description="ringrelay integration tests")
    p.add_argument("--binary", required=True, help="the ringrelay binary to test")
    p.add_argument("--sanitizer", action="store_true",
                   help="fail a test whose relay stderr shows an ASan/LSan/UBSan report")
    p.add_argument("--io", choices=("uring", "epoll", "both"), default="both")
    p.add_argument("--suite", choices=("relay", "package"), default="relay",
                   help="the relay's tests, or the Debian package's (make test-deb)")
    p.add_argument("-k", dest="select", action="append", default=[],
                   help="run only tests whose name contains SUBSTR (repeatable)")
    p.add_argument("--keep", action="store_true", help="keep temp dirs for inspection")
    p.add_argument("--list", action="store_true", help="list test names and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on failure")
    return p.parse_args(argv)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main(argv):
    opts = parse_args(argv)
    tests = [t for t in cases.ALL if (not opts.select or any(k in t.name for k in opts.select))
             and (t.sanitized or not opts.sanitizer) and t.suite == opts.suite]
    if opts.list:
        for t in tests:
            print(t.name + (" [per io]" if t.per_io else ""))
        return 0
    if not os.access(opts.binary, os.X_OK):
        print(f"run.py: {opts.binary}: not an executable file", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    opts.binary = os.path.abspath(opts.binary)
    raise_fd_limit()
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    ios = IO_BACK_ENDS if opts.io == "both" else (opts.io,)
    uring_ok = io_uring_available()
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    start = time.monotonic()
    session_dir = tempfile.mkdtemp(prefix="ringrelay-it-")
    os.chmod(session_dir, 0o755)
    try:
        plan = [(t, None) for t in tests if not t.per_io]
        plan += [(t, io) for io in ios for t in tests if t.per_io]
        for test, io in plan:
            if INTERRUPTED:
                break
            label = f"{test.name} [{io}]" if io else test.name
            if io == "uring" and not uring_ok:
                status, message = "SKIP", "io_uring_setup is not permitted on this kernel"
            else:
                t0 = time.monotonic()
                status, message = run_one(test, io, opts, session_dir)
                label += f" ({time.monotonic() - t0:.1f}s)" if opts.verbose else ""
            counts[status] += 1
            if status == "PASS":
                print(f"PASS {label}" + (f" ({message})" if message else ""), flush=True)
            else:
                print(f"{status} {label}: {message}", flush=True)
    except Interrupted as e:  # between two tests
        counts["FAIL"] += 1
        print(f"FAIL {e}", flush=True)
    finally:
        if not opts.keep:
            shutil.rmtree(session_dir, ignore_errors=True)
    print(f"total time {time.monotonic() - start:.1f}s", flush=True)
    summary = f"{counts['PASS']} passed, {counts['FAIL']} failed"
    if counts["SKIP"]:
        summary += f", {counts['SKIP']} skipped"
    print(summary, flush=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
