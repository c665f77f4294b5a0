#!/usr/bin/env python3
"""make soak: a long run of many relayed connections with random sizes,
random half-closes and random resets, every byte checked, while the relay's
RSS, descriptors and open-connection count are sampled every second. When
the load stops they must come back to where they were after warm-up.

  python3 tests/soak/soak.py --binary build/ringrelay [--minutes 30]
      [--connections 1000000] [--concurrency 256] [--out tests/soak/results/NAME]

It runs for --minutes and must relay at least --connections in that time.

Writes NAME.md (a summary table), NAME.csv (the samples) and NAME.png (RSS
and descriptors over time). Exits 1 if a byte was wrong, a connection failed
in a way it was not meant to, or the relay did not return to its baseline."""

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from kit.stats import stats_json as stats  # noqa: E402
from peers.wire import set_linger_reset  # noqa: E402

MAX_SIZE = 64 * 1024


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Load:
    """Connections of three kinds: 80 % send a random body, half-close and
    check the echo by SHA-256; 10 % half-close at once and read to the end;
    10 % send part of a body and reset."""

    def __init__(self, port, total, deadline, concurrency, seed):
        self.port, self.total, self.deadline = port, total, deadline
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self.block = os.urandom(MAX_SIZE)
        self.done = {"echo": 0, "half_close": 0, "reset": 0}
        self.failed = []
        self.started = 0

    async def one(self):
        kind = self.rng.random()
        size = self.rng.randint(1, MAX_SIZE)
        off = self.rng.randint(0, MAX_SIZE - size)
        body = self.block[off:off + size]
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            if kind < 0.8:
                writer.write(body)
                await writer.drain()
                writer.write_eof()
                got = await reader.read(-1)
                if hashlib.sha256(got).digest() != hashlib.sha256(body).digest():
                    raise ValueError(f"echo of {size} bytes came back as {len(got)} different bytes")
                self.done["echo"] += 1
            elif kind < 0.9:
                writer.write_eof()
                if await reader.read(-1) != b"":
                    raise ValueError("data after an empty half-closed request")
                self.done["half_close"] += 1
            else:
                writer.write(body[: size // 2 + 1])
                await writer.drain()
                set_linger_reset(writer.get_extra_info("socket"))
                writer.transport.abort()
                self.done["reset"] += 1
                return
        finally:
            writer.close()

    async def worker(self):
        while self.started < self.total and time.monotonic() < self.deadline:
            self.started += 1
            try:
                await asyncio.wait_for(self.one(), 30)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                if len(self.failed) < 20:
                    self.failed.append(repr(e))
                else:
                    self.failed.append("...")

    async def run(self):
        await asyncio.gather(*(self.worker() for _ in range(self.concurrency)))


def sampler(pid, sock, t0, rows, stop):
    while not stop.is_set():
        try:
            active = stats(sock)["process"]["active"]
        except (OSError, ValueError):
            active = -1
        rows.append((round(time.monotonic() - t0, 1), rss_kib(pid), harness.fd_count(pid), active))
        stop.wait(1.0)


def plot(csv, png):
    gp = (f"set terminal pngcairo size 1200,500 font ',9'; set output '{png}';"
          "set datafile separator ','; set key top left; set xlabel 'seconds';"
          "set ylabel 'RSS MiB'; set y2label 'descriptors / open connections'; set y2tics;"
          "set ytics nomirror; set grid;"
          f"plot '{csv}' every ::1 using 1:($2/1024) with lines lw 2 title 'RSS MiB',"
          f" '' every ::1 using 1:3 axes x1y2 with lines title 'descriptors',"
          f" '' every ::1 using 1:4 axes x1y2 with lines title 'open connections'")
    subprocess.run(["gnuplot", "-e", gp], check=False, timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import threading

    work = tempfile.mkdtemp(prefix="ringrelay-soak.")
    sock = os.path.join(work, "stats.sock")
    peers_env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "integration"))
    echo = subprocess.Popen([sys.executable, "-m", "peers", "echo-backend"],
                            stdout=subprocess.PIPE, text=True, env=peers_env)
    echo_port = json.loads(echo.stdout.readline())["port"]
    port = harness.free_port()
    relay = subprocess.Popen([args.binary, "--listen", f"127.0.0.1:{port}", "--backend",
                              f"127.0.0.1:{echo_port}", "--stats-socket", sock],
                             stderr=open(os.path.join(work, "relay.err"), "w"))
    harness.wait_until(lambda: os.path.exists(sock), 10, "the relay's stats socket")
    rows, stop = [], threading.Event()
    t0 = time.monotonic()
    th = threading.Thread(target=sampler, args=(relay.pid, sock, t0, rows, stop), daemon=True)
    th.start()
    # Warm-up: pools and buffers reach their working size.
    warm = Load(port, 2000, time.monotonic() + 60, args.concurrency, 1)
    asyncio.run(warm.run())
    time.sleep(2)
    base = (rss_kib(relay.pid), harness.fd_count(relay.pid))
    # Runs for the whole time: --connections is the least it must reach.
    load = Load(port, 1 << 62, time.monotonic() + args.minutes * 60, args.concurrency, 2)
    start = time.monotonic()
    asyncio.run(load.run())
    elapsed = time.monotonic() - start
    time.sleep(5)
    after = (rss_kib(relay.pid), harness.fd_count(relay.pid), stats(sock)["process"]["active"])
    stop.set()
    th.join()
    relay.send_signal(signal.SIGINT)
    relay.wait(30)
    echo.send_signal(signal.SIGTERM)
    echo.wait(30)
    peak_rss = max(r[1] for r in rows)
    peak_fd = max(r[2] for r in rows)
    total = sum(load.done.values())
    ok = (not load.failed and total >= args.connections and after[1] <= base[1] and after[2] == 0 and
          after[0] <= base[0] + 8 * 1024 and relay.returncode == 0)
    name = args.out or os.path.join(HERE, "results", time.strftime("%Y-%m-%d") + "-" + subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip())
    os.makedirs(os.path.dirname(name), exist_ok=True)
    with open(name + ".csv", "w") as f:
        f.write("seconds,rss_kib,fds,open_connections\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")
    plot(name + ".csv", name + ".png")
    lines = [
        f"# ringrelay soak {os.path.basename(name)}", "",
        f"{total:,} relayed connections in {elapsed / 60:.1f} min ({total / elapsed:,.0f}/s), "
        f"{args.concurrency} at a time, bodies of 1 B-64 KiB checked by SHA-256.", "",
        "| | |", "|---|---:|",
        f"| echoed and checked | {load.done['echo']:,} |",
        f"| half-closed at once, read to the end | {load.done['half_close']:,} |",
        f"| reset mid-body on purpose | {load.done['reset']:,} |",
        f"| failed otherwise | {len(load.failed)} |",
        f"| RSS after warm-up / peak / 5 s after the load | {base[0] / 1024:.1f} / {peak_rss / 1024:.1f} / {after[0] / 1024:.1f} MiB |",
        f"| descriptors after warm-up / peak / after | {base[1]} / {peak_fd} / {after[1]} |",
        f"| open connections after | {after[2]} |",
        f"| verdict | {'PASS' if ok else 'FAIL'} |", "",
    ]
    if load.failed:
        lines += ["Failures: " + "; ".join(load.failed[:20]), ""]
    lines.append(f"![RSS and descriptors over time]({os.path.basename(name)}.png)")
    with open(name + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
