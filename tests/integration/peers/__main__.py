"""The peers that run in a process of their own, so the Python side of a
heavy test uses a second core: `python3 -m peers NAME ...` with
tests/integration on the path. Each prints JSON lines on stdout."""

import argparse

from .backends import echo_backend, integrity_backend
from .clients import (churn_client, integrity_client, rate_client, sources_client,
                      steady_client)
from .fleet_client import add_arguments as fleet_arguments
from .fleet_client import fleet_client
from .impair import delay_queue


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("integrity-backend", "integrity-client"):
        q = sub.add_parser(name)
        q.add_argument("--conns", type=int, default=16)
        q.add_argument("--bytes", type=int, default=1 << 24)
        q.add_argument("--block", type=int, default=8 << 20)
        q.add_argument("--max-chunk", type=int, default=1 << 18)
        q.add_argument("--timeout", type=float, default=60)
        q.add_argument("--target")
        q.add_argument("--source")
    q = sub.add_parser("echo-backend")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=0)
    q = sub.add_parser("delay-queue")
    q.add_argument("--queue", type=int, required=True)
    q.add_argument("--delay-ms", type=float, required=True)
    q = sub.add_parser("churn-client")
    q.add_argument("--target", required=True)
    q.add_argument("--total", type=int, default=20000)
    q.add_argument("--concurrency", type=int, default=200)
    q.add_argument("--timeout", type=float, default=10)
    q = sub.add_parser("rate-client")
    q.add_argument("--target", required=True)
    q.add_argument("--rate", type=float, default=200)
    q.add_argument("--timeout", type=float, default=10)
    q.add_argument("--source", help="the address to connect from")
    q = sub.add_parser("sources-client")
    q.add_argument("--target", required=True)
    q.add_argument("--sources", required=True)
    q.add_argument("--timeout", type=float, default=5)
    q = sub.add_parser("steady-client")
    q.add_argument("--target", required=True)
    q.add_argument("--conns", type=int, default=2000)
    q.add_argument("--pieces", type=int, default=40)
    q.add_argument("--piece", type=int, default=512)
    q.add_argument("--gap", type=float, default=0.1)
    q.add_argument("--timeout", type=float, default=60)
    fleet_arguments(sub.add_parser("fleet-client"))
    args = p.parse_args()
    {"integrity-backend": integrity_backend, "integrity-client": integrity_client,
     "steady-client": steady_client, "rate-client": rate_client,
     "echo-backend": echo_backend, "churn-client": churn_client,
     "delay-queue": delay_queue, "fleet-client": fleet_client,
     "sources-client": sources_client}[args.cmd](args)


if __name__ == "__main__":
    main()
