#!/usr/bin/env python3
"""Summarises the perf profiles bench/run.sh --profile recorded: for each
scenario and contender, how the relay's CPU splits between the kernel and
user space (its own code, libc, libraries), the kernel paths it spends in,
and the hottest functions. Writes markdown."""

import argparse
import collections
import glob
import os
import re
import subprocess

# Kernel call paths that say where the time goes, by an inclusive share.
PATHS = [
    ("tcp_sendmsg", "send path (tcp_sendmsg, incl. loopback delivery)"),
    ("net_rx_action", "loopback receive processing (softirq in the sender's context)"),
    ("tcp_recvmsg", "receive path (tcp_recvmsg)"),
    ("splice", "splice"),
    ("__sys_accept4", "accept"), ("do_accept", "accept"),
    ("__sys_connect", "connect"), ("io_connect", "connect"),
    ("__x64_sys_close", "close"), ("io_close", "close"),
    ("tcp_v4_connect", "tcp_v4_connect"),
    ("__x64_sys_setsockopt", "setsockopt"), ("__x64_sys_getpeername", "getpeername"),
    ("__x64_sys_getsockname", "getsockname"), ("__x64_sys_socket", "socket"),
    ("__do_sys_io_uring_enter", "io_uring_enter (everything it runs)"),
    ("__x64_sys_epoll_wait", "epoll_wait"), ("do_epoll_wait", "epoll_wait"),
    ("ep_poll", "epoll_wait"),
    ("ssl", "TLS"),
]


def perf(data, *args):
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--quiet", *args],
                         capture_output=True, text=True, timeout=300)
    return out.stdout


def shares(text):
    """Lines of perf report --stdio with percentages: [(pct, rest)]."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(?:([0-9.]+)%\s+)?(.*)", line)
        if m:
            rows.append((float(m.group(1)), float(m.group(2) or 0), m.group(3).strip()))
    return rows


def summarise(data):
    dso = shares(perf(data, "--no-children", "--sort", "dso", "-g", "none"))
    kernel = sum(p for p, _, name in dso if "kernel" in name)
    user = collections.OrderedDict((name, p) for p, _, name in dso if "kernel" not in name)
    children = shares(perf(data, "--children", "--sort", "sym", "-g", "none"))
    paths = collections.OrderedDict()
    for key, label in PATHS:
        best = max((c for c, _, sym in children if re.search(r"\] " + re.escape(key) + r"\b", sym)
                    or sym.endswith(" " + key)), default=0.0)
        if best >= 1.0 and label not in paths:
            paths[label] = best
    self_syms = shares(perf(data, "--no-children", "--sort", "sym", "-g", "none"))[:12]
    return kernel, user, paths, self_syms


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True, help="the perf data files (SCEN-CASE-CONTENDER-REP.data)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    lines = [f"# Profiles {args.title}", "",
             "perf record -e cpu-clock -g on the relay process while the scenario's load ran "
             "(first repetition; percentages of the relay's sampled CPU). \"inclusive\" shares "
             "nest: the send path contains the loopback receive processing it triggers.", ""]
    for data in sorted(glob.glob(os.path.join(args.dir, "*-1.data"))):
        name = os.path.basename(data)[:-len("-1.data")]
        try:
            kernel, user, paths, syms = summarise(data)
        except (subprocess.SubprocessError, OSError) as e:
            lines += [f"## {name}", "", f"perf report failed: {e}", ""]
            continue
        lines += [f"## {name}", "",
                  f"kernel {kernel:.1f}%, user space {100 - kernel:.1f}% ("
                  + ", ".join(f"{k} {v:.1f}%" for k, v in user.items() if v >= 0.1) + ")", ""]
        if paths:
            lines += ["| kernel path (inclusive) | % |", "|---|---:|"]
            lines += [f"| {k} | {v:.1f} |" for k, v in paths.items()]
            lines.append("")
        lines += ["| hottest functions (self) | % |", "|---|---:|"]
        lines += [f"| `{sym}` | {p:.1f} |" for p, _, sym in syms]
        lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
