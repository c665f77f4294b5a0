"""The fleet's client, run on the client host: TLS requests to the
service address from many source addresses, each reporting which relay
and which gateway it went through and what client address the gateway
believed. Three modes:

  burst  --count N: N requests of /who, at most 64 at once; then
         {"results": [...]}.
  rate   --rate R: R requests of /who a second until SIGTERM, each printed
         as {"conn": {...}} when it ends; then {"done": {...}}.
  long   --count N --relay ADDR[,ADDR]: downloads of /big.bin, paced
         (--pace bytes a second each), kept only when they came through one
         of those relays until N are in flight ({"inflight": N}); then each
         is read to its end and checked against --sha256: {"long": [...]}.

Times are wall-clock seconds (time.time()), so the test can set them
against the moment it sent a signal."""

import asyncio
import hashlib
import itertools
import json
import signal
import ssl
import sys
import time


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def request(host, port, source, path, tls, timeout):
    """Opens a connection from source, sends GET path; returns (reader,
    writer, record) with the response head read into record."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        host, port, ssl=tls, server_hostname="gateway", local_addr=(source, 0)), timeout)
    me = writer.get_extra_info("sockname")
    rec = {"src": f"{me[0]}:{me[1]}", "t_open": time.time()}
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode().split("\r\n")
    rec["status"] = int(lines[0].split()[1])
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k in ("x-client", "x-relay", "x-gateway", "content-length"):
            rec[k.replace("x-", "").replace("-", "_")] = v.strip()
    return reader, writer, rec


async def who(args, tls, source, i):
    """One /who request; its record (ok or the error)."""
    rec = {"i": i, "src": source, "t_open": time.time()}
    writer = None
    try:
        reader, writer, rec = await request(args.host, args.port, source, "/who", tls,
                                            args.timeout)
        rec["i"] = i
        body = await asyncio.wait_for(reader.read(), args.timeout)
        rec["ok"] = rec["status"] == 200 and rec.get("client") == rec["src"] and \
            body.decode().strip() == rec["src"].rsplit(":", 1)[0]
        if not rec["ok"]:
            rec["error"] = f"status {rec['status']}, gateway saw {rec.get('client')}, body {body!r}"
    except Exception as e:  # noqa: BLE001: every failure is reported
        rec["ok"] = False
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        rec["t_done"] = time.time()
        if writer:
            writer.close()
    return rec


async def burst(args, tls, sources):
    gate = asyncio.Semaphore(64)

    async def one(i):
        async with gate:
            return await who(args, tls, sources[i % len(sources)], i)
    emit({"results": await asyncio.gather(*(one(i) for i in range(args.count)))})


async def rate(args, tls, sources):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks, counts = set(), {"ok": 0, "failed": 0}

    async def one(i):
        rec = await who(args, tls, sources[i % len(sources)], i)
        counts["ok" if rec["ok"] else "failed"] += 1
        emit({"conn": rec})
    emit({"started": time.time()})
    for i in itertools.count():
        if stop.is_set() or time.time() > args.deadline:
            break
        t = asyncio.create_task(one(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        try:
            await asyncio.wait_for(stop.wait(), 1 / args.rate)
        except asyncio.TimeoutError:
            pass
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    emit({"done": dict(counts, opened=i)})


async def long(args, tls, sources):
    kept, wanted = [], set(args.relay.split(","))
    for i in range(args.attempts):
        if len(kept) == args.count:
            break
        reader, writer, rec = await request(args.host, args.port, sources[i % len(sources)],
                                            "/big.bin", tls, args.timeout)
        if rec.get("relay") in wanted and rec["status"] == 200:
            kept.append((reader, writer, rec))
        else:
            writer.close()
    emit({"inflight": len(kept), "t": time.time()})

    async def finish(reader, writer, rec):
        digest, got, start = hashlib.sha256(), 0, time.monotonic()
        try:
            while True:
                piece = await asyncio.wait_for(reader.read(1 << 16), args.timeout)
                if not piece:
                    break
                digest.update(piece)
                got += len(piece)
                ahead = got / args.pace - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            rec["ok"] = got == int(rec.get("content_length", -1)) and \
                digest.hexdigest() == args.sha256
            if not rec["ok"]:
                rec["error"] = f"{got} bytes, sha256 {digest.hexdigest()[:16]}"
        except Exception as e:  # noqa: BLE001
            rec["ok"] = False
            rec["error"] = f"{type(e).__name__} after {got} bytes: {e}"
        rec["bytes"] = got
        rec["t_done"] = time.time()
        writer.close()
        return rec
    emit({"long": await asyncio.gather(*(finish(*k) for k in kept))})


def fleet_client(args):
    host, port = args.target.rsplit(":", 1)
    args.host, args.port = host.strip("[]"), int(port)
    args.deadline = time.time() + args.duration
    sources = args.sources.split(",")
    mode = {"burst": burst, "rate": rate, "long": long}[args.mode]
    asyncio.run(mode(args, tls_context(), sources))


def add_arguments(q):
    q.add_argument("--target", required=True)
    q.add_argument("--sources", required=True)
    q.add_argument("--mode", choices=["burst", "rate", "long"], required=True)
    q.add_argument("--count", type=int, default=600)
    q.add_argument("--rate", type=float, default=50)
    q.add_argument("--duration", type=float, default=60, help="rate: at most this long")
    q.add_argument("--relay")
    q.add_argument("--attempts", type=int, default=1000)
    q.add_argument("--pace", type=float, default=2 << 20)
    q.add_argument("--sha256")
    q.add_argument("--timeout", type=float, default=20)
