#!/usr/bin/env python3
"""Turns bench/run.sh's raw numbers into the results: NAME.md (medians with
min-max, ratios against HAProxy, BENCH.md targets), NAME.json (every number)
and the data and gnuplot script for NAME.png."""
import argparse
import json
import os
import statistics

LABELS = {
    "rr": "ringrelay",
    "rr-epoll": "ringrelay epoll",
    "rr-copy": "ringrelay copy",
    "rr-splice": "ringrelay splice",
    "haproxy": "HAProxy",
    "haproxy-splice": "HAProxy splice",
    "nginx": "nginx stream",
    "direct": "direct",
    "rr-w1": "ringrelay 1 worker",
    "rr-w2": "ringrelay 2 workers",
    "rr-admin": "ringrelay, admin scraped 10/s",
    "rr-acl": "ringrelay, allow/deny + rate limit",
    "rr-base": "ringrelay baseline",
}
ORDER = list(LABELS)
HAPROXY = ("haproxy", "haproxy-splice")
ANCHORS = HAPROXY + ("nginx",)

# metric -> (label, +1 when higher is better, -1 when lower is)
METRICS = {
    "gbps": ("Gbit/s", +1),
    "cpu_s_per_gb": ("relay CPU-s per GB", -1),
    "rps": ("requests/s", +1),
    "cpu_us_per_req": ("relay CPU-µs per request", -1),
    "mean_us": ("mean round trip µs", -1),
    "p99_us": ("p99 µs", -1),
    "cps": ("connections/s", +1),
    "cpu_us_per_conn": ("relay CPU-µs per connection", -1),
    "rss_kib_per_conn": ("relay RSS KiB per connection", -1),
    "fds_per_conn": ("relay fds per connection", -1),
    "rss_mib_total": ("relay RSS MiB with all open", -1),
    "p999_us": ("p99.9 µs", -1),
    "syscalls_per_unit": ("syscalls (all of them)", -1),
    "sys_cpu_s_per_gb": ("machine CPU-s per GB", -1),
    "sys_cpu_us_per_req": ("machine CPU-µs per request", -1),
    "sys_cpu_us_per_conn": ("machine CPU-µs per connection", -1),
    "above_direct_sys_cpu_s_per_gb": ("machine CPU-s per GB above direct", -1),
    "above_direct_sys_cpu_us_per_req": ("machine CPU-µs per request above direct", -1),
    "above_direct_sys_cpu_us_per_conn": ("machine CPU-µs per connection above direct", -1),
}
# The process view of each cost, and its system view (the whole machine's
# CPU with the contender, minus the direct run's, per unit of work).
SYSTEM_VIEW = {
    "cpu_s_per_gb": "above_direct_sys_cpu_s_per_gb",
    "cpu_us_per_req": "above_direct_sys_cpu_us_per_req",
    "cpu_us_per_conn": "above_direct_sys_cpu_us_per_conn",
}

TITLES = {
    "S1": "S1 bulk: blaster (4 connections, 64 KiB writes) -> relay -> sink",
    "S2": "S2 small messages: ping-pong -> relay -> echo",
    "S3": "S3 TLS: wrk -t1 -c64 keep-alive -> relay -> nginx ssl proxy_protocol, 1 KiB",
    "S4": "S4 connection churn: wrk Connection: close -> relay -> nginx proxy_protocol, 1 KiB",
    "S5": "S5 idle connections: clients that send nothing, backend side open, header delivered",
    "S6": "S6 cores: ringrelay with 1 worker (CPU 1) and 2 workers (CPUs 0-1)",
    "SC": "SC syscalls: per request (S2 64 B x 50) and per connection (S4), all threads of the "
          "contender's process, counted by perf in the first repetition",
}


def load_raw(path):
    """raw.tsv -> {scen: {case: {contender: {metric: [values by rep order]}}}}"""
    data = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 6:
                continue
            scen, case, cont, rep, metric, value = parts
            try:
                v = float(value)
            except ValueError:
                continue
            cell = data.setdefault(scen, {}).setdefault(case, {}).setdefault(cont, {})
            cell.setdefault(metric, []).append((int(rep), v))
    return data


def add_above_direct(data):
    """Each contender's system CPU per unit minus the direct run's in the
    same repetition: what the relay costs the machine, wherever it ran (its
    threads, softirq, kernel workers, the peers' extra work)."""
    for cases in data.values():
        for conts in cases.values():
            direct = conts.get("direct", {})
            for cont, metrics in conts.items():
                if cont == "direct":
                    continue
                for metric in [m for m in metrics if m.startswith("sys_cpu_")]:
                    d = dict(direct.get(metric, []))
                    pairs = [(r, v - d[r]) for r, v in metrics[metric] if r in d]
                    if pairs:
                        metrics["above_direct_" + metric] = pairs


def load_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    return meta


def summary(pairs):
    vals = [v for _, v in pairs]
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
        "values": vals,
    }


def fmt(v):
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def cell_text(s):
    if s is None:
        return "—"
    if s["n"] == 1:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def best(sums, names, sign):
    """The best median among names (sign +1: highest), as (name, value)."""
    have = [(n, sums[n]["median"]) for n in names if n in sums]
    if not have:
        return None, None
    return max(have, key=lambda x: x[1] * sign)


def summarise(data):
    out = {}
    for scen, cases in data.items():
        for case, conts in cases.items():
            for cont, metrics in conts.items():
                for metric, pairs in metrics.items():
                    out.setdefault(scen, {}).setdefault(case, {}).setdefault(metric, {})[
                        cont
                    ] = summary(pairs)
    return out


def s6_ratios(data):
    """Per case and metric, 2 workers / 1 worker within each repetition."""
    res = {}
    for case, conts in data.get("S6", {}).items():
        w1, w2 = conts.get("rr-w1", {}), conts.get("rr-w2", {})
        for metric in ("rps", "cps"):
            a, b = dict(w1.get(metric, [])), dict(w2.get(metric, []))
            pairs = [(r, b[r] / a[r]) for r in sorted(a) if r in b and a[r] > 0]
            if pairs:
                res[case] = summary(pairs)
    return res


def table(lines, sums, conts):
    """One markdown table: a row per metric, then its ratio to the better HAProxy."""
    lines.append("| | " + " | ".join(LABELS[c] for c in conts) + " |")
    lines.append("|---|" + "---:|" * len(conts))
    for metric, per in sums.items():
        label, sign = METRICS.get(metric, (metric, -1))
        lines.append(f"| {label} | " + " | ".join(cell_text(per.get(c)) for c in conts) + " |")
        ref_name, ref = best(per, HAPROXY, sign)
        if ref:
            ratios = [f"{per[c]['median'] / ref:.2f}x" if c in per else "—" for c in conts]
            lines.append(f"| ÷ {LABELS[ref_name]} | " + " | ".join(ratios) + " |")
    lines.append("")


def med(sums, scen, case, metric, cont):
    try:
        return sums[scen][case][metric][cont]["median"]
    except KeyError:
        return None


def verdict(ok):
    return "—" if ok is None else ("PASS" if ok else "FAIL")


def both_views(sums, scen, case, metric, anchors, limit):
    """ringrelay's cost ÷ the better anchor's, in the process view (metric)
    and the system view; (text, ok) or None when the cell did not run."""
    out, ok = [], True
    for view, name in (("process", metric), ("system", SYSTEM_VIEW[metric])):
        per = sums.get(scen, {}).get(case, {}).get(name, {})
        anchor, ref = best(per, anchors, -1)
        if "rr" not in per or not ref or ref <= 0:
            continue
        ratio = per["rr"]["median"] / ref
        out.append(f"{view} {ratio:.2f}x {LABELS[anchor]}")
        ok = ok and ratio <= limit
    return (", ".join(out), ok) if out else None


def targets(sums, ratios6):
    """BENCH.md's targets for ringrelay's default path, as (target, measured,
    verdict); each CPU target holds only if it holds in both views."""
    rows = []
    got = both_views(sums, "S1", "bulk", "cpu_s_per_gb", ("haproxy-splice",), 0.85)
    r_bw = med(sums, "S1", "bulk", "gbps", "rr")
    h_bw = med(sums, "S1", "bulk", "gbps", "haproxy-splice")
    if got and None not in (r_bw, h_bw):
        rows.append(("S1: CPU/GB ≤ 0.85x HAProxy splice, throughput ≥ it",
                     f"{got[0]}; {r_bw / h_bw:.2f}x Gbit/s", verdict(got[1] and r_bw >= h_bw)))
    for scen in ("S2", "S3"):
        for case, per in sorted(sums.get(scen, {}).items()):
            got = both_views(sums, scen, case, "cpu_us_per_req", ANCHORS, 0.8)
            if got:
                rows.append((f"{scen} {case}: CPU/request ≤ 0.8x the better anchor", got[0],
                             verdict(got[1])))
            for q in ("p99_us", "p999_us"):
                lat = per.get(q, {})
                anchor, ref = best(lat, ANCHORS, -1)
                if "rr" in lat and ref:
                    r = lat["rr"]["median"]
                    rows.append((f"{scen} {case}: {METRICS[q][0]} ≤ the better anchor's",
                                 f"{fmt(r)} vs {fmt(ref)} µs ({LABELS[anchor]}), {r / ref:.2f}x",
                                 verdict(r <= ref) if q == "p99_us" else "—"))
    got = both_views(sums, "S4", "churn", "cpu_us_per_conn", HAPROXY, 0.8)
    if got:
        rows.append(("S4: CPU/connection ≤ 0.8x the better HAProxy", got[0], verdict(got[1])))
    per = sums.get("SC", {}).get("S4-churn-per-connection", {}).get("syscalls_per_unit", {})
    anchor, ref = best(per, ANCHORS, -1)
    if "rr" in per and ref:
        r = per["rr"]["median"]
        rows.append(("S4: fewer syscalls per connection than any anchor",
                     f"{r:.1f} vs {ref:.1f} ({LABELS[anchor]})", verdict(r < ref)))
    rss = med(sums, "S5", "idle", "rss_kib_per_conn", "rr")
    fds = med(sums, "S5", "idle", "fds_per_conn", "rr")
    if rss is not None:
        rows.append(("S5: ≤ 0.5 KiB RSS per idle connection", f"{rss:.2f} KiB", verdict(rss <= 0.5)))
    if fds is not None:
        rows.append(("S5: 2 fds per connection", f"{fds:.2f}", verdict(fds <= 2.0)))
    for case, s in sorted(ratios6.items()):
        rows.append(
            (
                f"S6 {case}: 2 workers ≥ 1.8x 1 worker",
                f"{s['median']:.2f}x (load generator shares CPU 0)",
                verdict(s["median"] >= 1.8),
            )
        )
    for scen, cases in sorted(sums.items()):
        for case, per_metric in cases.items():
            for metric in list(SYSTEM_VIEW) + list(SYSTEM_VIEW.values()):
                a = per_metric.get(metric, {})
                if "rr" in a and "rr-epoll" in a:
                    ratio = a["rr"]["median"] / a["rr-epoll"]["median"]
                    rows.append((f"{scen} {case}: io_uring default ≤ epoll ({METRICS[metric][0]})",
                                 f"{ratio:.2f}x", verdict(ratio <= 1.0)))
    return rows


def load_syscalls(path):
    """syscalls.tsv -> {case: {contender: {syscall: per unit}}}"""
    out = {}
    if not path or not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                case, cont, name, v = parts
                out.setdefault(case, {}).setdefault(cont, {})[name] = float(v)
    return out


def syscall_tables(lines, calls):
    """Per case, a row per syscall (those at 0.01 per unit or more for some
    contender), most frequent for ringrelay first."""
    for case, per in sorted(calls.items()):
        conts = [c for c in ORDER if c in per]
        names = {n for c in conts for n, v in per[c].items() if v >= 0.01}
        key = per.get("rr", {})
        names = sorted(names, key=lambda n: (-key.get(n, 0), n))
        lines += [f"### {case}: each call", "",
                  "| syscall | " + " | ".join(LABELS[c] for c in conts) + " |",
                  "|---|" + "---:|" * len(conts)]
        for n in names:
            lines.append(f"| {n} | " + " | ".join(
                f"{per[c][n]:.2f}" if n in per[c] else "—" for c in conts) + " |")
        lines.append("")


def markdown(meta, sums, ratios6, notes, target_rows, paired=None, calls=None):
    reps = int(meta.get("reps", "1"))
    lines = [
        f"# ringrelay benchmark {meta.get('name', '')}",
        "",
        f"{meta.get('mode', '?')} run, {reps} interleaved repetition(s), "
        f"{meta.get('date', '?')}, commit {meta.get('commit', '?')}"
        + (" (relay sources modified)" if meta.get("relay_tree_dirty", "0") not in ("", "0") else "")
        + f", {meta.get('elapsed_s', '?')} s wall time.",
        "",
        f"Machine: {meta.get('cpu', '?')}, {meta.get('cpus', '?')} CPUs, Linux {meta.get('kernel', '?')}. "
        f"{meta.get('relay_version', 'ringrelay')} (binary sha256 {meta.get('relay_sha256', '?')}…); HAProxy {meta.get('haproxy', '?')}; "
        f"nginx {meta.get('nginx', '?')}; wrk {meta.get('wrk', '?')}.",
        "",
        "Method: bench/run.sh per /work/shared/BENCH.md, in a private network namespace; "
        "the relay on CPU 1, load generator and backend on CPU 0, one worker per relay. "
        "Relay CPU = utime+stime of all its threads over the measured window (nginx: the worker); "
        "machine CPU = every CPU's busy time over the same window (/proc/stat: user, nice, "
        "system, irq, softirq, steal), and “above direct” is that minus the direct run's in the "
        "same repetition, per unit of work: work done in softirq or kernel threads counts there. "
        "Cells are medians with (min–max) over the repetitions; each “÷” row is the median "
        "divided by the better HAProxy (splice or not) for that figure. "
        f"Durations: {meta.get('durations', '?')} (shortened from BENCH.md's to fit the time budget).",
        "",
    ]
    io = sorted((k[len("relay_io_"):], v) for k, v in meta.items() if k.startswith("relay_io_"))
    if io:
        lines += ["ringrelay back ends as reported at start: " + ", ".join(f"{LABELS.get(k, k)}: {v}" for k, v in io) + ".", ""]
    if target_rows:
        lines += ["## Targets (ringrelay default path)", "", "| target | measured | |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {v} |" for t, m, v in target_rows]
        lines.append("")
    for scen in ("S1", "S2", "S3", "S4", "S5", "S6", "SC"):
        if scen not in sums:
            continue
        lines += [f"## {TITLES[scen]}", ""]
        for case in sums[scen]:
            per_metric = sums[scen][case]
            present = {c for m in per_metric.values() for c in m}
            conts = [c for c in ORDER if c in present]
            if len(sums[scen]) > 1 or scen == "S6":
                lines += [f"### {case}", ""]
            table(lines, per_metric, conts)
        if scen == "S5":
            lines += [
                "A relay that allocates and touches its connection table at start (ringrelay, "
                "sized by --max-connections) shows little or no growth per connection; the "
                "“RSS MiB with all open” row compares what each process holds in total.",
                "",
            ]
        if scen == "SC" and calls:
            syscall_tables(lines, calls)
        if scen == "S6" and ratios6:
            lines += ["| 2 workers ÷ 1 worker (per repetition) | ratio |", "|---|---:|"]
            lines += [f"| {case} | {cell_text(s)} |" for case, s in sorted(ratios6.items())]
            lines += [
                "",
                "On this 2-CPU machine the second worker shares CPU 0 with the load generator "
                "and the backend, so this ratio is a floor, not what 2 free cores would give.",
                "",
            ]
    cost = beside(sums, "rr-admin")
    if cost:
        lines += ["## The admin listener's cost", "",
                  "ringrelay as is, and with its admin listener scraped ten times a second "
                  "(GET /metrics and /ready, from CPU 0) while the load runs; the relay's CPU "
                  "includes the stats thread's.", "",
                  "| cell | figure | ringrelay | admin scraped | ratio |", "|---|---|---:|---:|---:|"]
        lines += [f"| {c} | {m} | {fmt(a)} | {fmt(b)} | {r:.2f}x |" for c, m, a, b, r in cost]
        lines.append("")
    cost = beside(sums, "rr-acl")
    if cost:
        lines += ["## What the access rules cost", "",
                  "ringrelay as is, and with a deny list of four ranges, an allow list the "
                  "clients are in, and max_connection_rate_per_source set too high to refuse "
                  "anyone: every new connection is checked against both lists and counted in "
                  "the rate sketch. The two run back to back in each repetition; the last "
                  "column is the median (min–max) of their ratio within a repetition, which a "
                  "burst of noise on the machine moves less than the ratio of the medians.", "",
                  "| cell | figure | ringrelay | with the rules | ratio of medians | "
                  "paired ratio |", "|---|---|---:|---:|---:|---:|"]
        paired_rows(lines, cost, (paired or {}).get("rr-acl", {}))
    cost = beside(sums, "rr-base")
    if cost:
        lines += ["## This build against the baseline", "",
                  f"ringrelay as built (sha256 {meta.get('relay_sha256', '?')}…) and the baseline "
                  f"binary (sha256 {meta.get('baseline_sha256', '?')}…), run back to back in each "
                  "repetition. The ratios are the baseline's figure over this build's: for a "
                  "cost, above 1 means this build is cheaper; for a rate, below 1 means it is "
                  "faster.", "",
                  "| cell | figure | this build | baseline | baseline ÷ build (medians) | "
                  "paired, per repetition |", "|---|---|---:|---:|---:|---:|"]
        paired_rows(lines, cost, (paired or {}).get("rr-base", {}))
    lines += ["## Notes", ""]
    if scen_nginx_v1(sums):
        lines.append("- nginx stream sends PROXY protocol v1 (it cannot send v2); the others send v2.")
    lines += [f"- {n}" for n in notes] if notes else ["- no anomaly noted by the runner"]
    lines.append("")
    lines.append(f"![headline figures]({meta.get('name', 'results')}.png)")
    lines.append("")
    return "\n".join(lines)


def paired_rows(lines, cost, pairs):
    """The rows of a beside() table with each cell's paired ratio."""
    lines += [f"| {c} | {m} | {fmt(a)} | {fmt(b)} | {r:.2f}x | "
              f"{cell_text(pairs.get((c, m)))} |" for c, m, a, b, r in cost]
    lines.append("")


def beside(sums, other):
    """Rows (cell, metric, rr, other, ratio) wherever both ran: what the
    variant other of the default relay costs the data path."""
    rows = []
    for scen, cases in sums.items():
        for case, per_metric in cases.items():
            for metric, per in per_metric.items():
                if metric.startswith(("cpu_", "above_direct_", "syscalls")) or metric in (
                        "rps", "cps", "gbps", "p99_us", "p999_us"):
                    a, b = per.get("rr"), per.get(other)
                    if a and b and a["median"]:
                        rows.append((f"{scen} {case}", METRICS.get(metric, (metric,))[0],
                                     a["median"], b["median"], b["median"] / a["median"]))
    return rows


def paired_ratios(data, other):
    """{(cell, metric label): summary of other / rr within each repetition},
    where both ran in it."""
    out = {}
    for scen, cases in data.items():
        for case, conts in cases.items():
            a_all, b_all = conts.get("rr", {}), conts.get(other, {})
            for metric, pairs in b_all.items():
                a, b = dict(a_all.get(metric, [])), dict(pairs)
                ratios = [(r, b[r] / a[r]) for r in sorted(b) if r in a and a[r] > 0]
                if ratios:
                    out[(f"{scen} {case}", METRICS.get(metric, (metric,))[0])] = summary(ratios)
    return out


def scen_nginx_v1(sums):
    return any("nginx" in per for cases in sums.values() for m in cases.values() for per in m.values())


# Headline panels of the plot: (scenario, case, metric, title).
PANELS = [
    ("S1", "bulk", "gbps", "S1 bulk: Gbit/s (higher is better)"),
    ("S1", "bulk", "cpu_s_per_gb", "S1 bulk: relay CPU-s per GB (lower is better)"),
    ("S2", "64B-500c", "cpu_us_per_req", "S2 64 B x 500 conns: CPU-µs/request (lower)"),
    ("S3", "tls", "cpu_us_per_req", "S3 TLS: relay CPU-µs/request (lower)"),
    ("S4", "churn", "cpu_us_per_conn", "S4 churn: relay CPU-µs/connection (lower)"),
    ("S5", "idle", "rss_mib_total", "S5 idle: relay RSS MiB with all connections open (lower)"),
]
COLOURS = {"rr": 1, "rr-base": 5, "rr-admin": 1, "rr-acl": 1, "rr-epoll": 1, "rr-copy": 1, "rr-splice": 1, "haproxy": 2, "haproxy-splice": 2, "nginx": 3, "direct": 4}


def headline_ratios(sums):
    """(label, ringrelay ÷ anchor, target) for the CPU targets of BENCH.md."""
    rows = []
    r, h = med(sums, "S1", "bulk", "cpu_s_per_gb", "rr"), med(sums, "S1", "bulk", "cpu_s_per_gb", "haproxy-splice")
    if r and h:
        rows.append(("S1 CPU/GB", r / h, 0.85))
    for scen in ("S2", "S3"):
        for case, per in sorted(sums.get(scen, {}).items()):
            cpu = per.get("cpu_us_per_req", {})
            _, ref = best(cpu, ANCHORS, -1)
            if "rr" in cpu and ref:
                rows.append((f"{scen} {case}", cpu["rr"]["median"] / ref, 0.8))
    per = sums.get("S4", {}).get("churn", {}).get("cpu_us_per_conn", {})
    _, ref = best(per, HAPROXY, -1)
    if "rr" in per and ref:
        rows.append(("S4 CPU/conn", per["rr"]["median"] / ref, 0.8))
    return rows


def plot_files(meta, sums, plot_dir, out_base):
    os.makedirs(plot_dir, exist_ok=True)
    panels = []
    for scen, case, metric, title in PANELS:
        per = sums.get(scen, {}).get(case, {}).get(metric)
        if not per and scen == "S2":
            case = next(iter(sums.get("S2", {})), None)
            per = sums.get("S2", {}).get(case, {}).get(metric) if case else None
            title = f"S2 {case}: CPU-µs/request (lower)"
        if not per:
            continue
        dat = f"panel{len(panels)}.dat"
        with open(os.path.join(plot_dir, dat), "w") as f:
            for c in ORDER:
                if c in per:
                    s = per[c]
                    f.write(f"\"{LABELS[c]}\" {s['median']} {s['min']} {s['max']} {COLOURS.get(c, 5)}\n")
        panels.append((dat, title))
    ratio_rows = headline_ratios(sums)
    if ratio_rows:
        with open(os.path.join(plot_dir, "ratios.dat"), "w") as f:
            for label, ratio, target in ratio_rows:
                f.write(f"\"{label}\" {ratio:.4f} {target}\n")
    body = [
        f"set multiplot layout 3,3 title 'ringrelay benchmark {meta.get('name', '')}: median, bars min-max'",
        "set style fill solid 0.75 border -1",
        "set boxwidth 0.7",
        "set yrange [0:*]",
        "set xtics rotate by -35 nomirror",
        "set grid ytics",
        "unset key",
        # ringrelay blue, HAProxy red, nginx green, direct grey
        "array col[5] = [0x1f77b4, 0xd62728, 0x2ca02c, 0x7f7f7f, 0x9467bd]",
    ]
    if ratio_rows:
        body += [
            "set title \"ringrelay ÷ best anchor (bars; lower is better), BENCH.md target (dots)\"",
            "plot 'ratios.dat' using 0:2:xtic(1) with boxes lc rgb '#1f77b4', "
            "'' using 0:3 with points pt 7 ps 1.2 lc rgb 'black', 1 with lines dt 2 lc rgb 'grey'",
        ]
    for dat, title in panels:
        body.append(f"set title \"{title}\"")
        body.append(
            f"plot '{dat}' using 0:2:(col[int($5)]):xtic(1) with boxes lc rgb variable, "
            f"'' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 0 ps 0"
        )
    body.append("unset multiplot")
    gp = [
        "if (!exists('term')) term = 'pngcairo'",
        "if (term eq 'pngcairo') set terminal pngcairo size 1500,1200 font ',9'; else set terminal png size 1500,1200",
        f"set output '{out_base}.png'",
    ] + body + [
        "set terminal svg size 1500,1200 font ',9' dynamic",
        f"set output '{out_base}.svg'",
    ] + body
    with open(os.path.join(plot_dir, "plot.gp"), "w") as f:
        f.write("\n".join(gp) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--notes", required=True)
    ap.add_argument("--syscalls", help="syscalls.tsv: per-call counts of scenario SC")
    ap.add_argument("--out", required=True, help="output path without extension")
    ap.add_argument("--plot-dir", required=True)
    args = ap.parse_args()

    meta = load_meta(args.meta)
    data = load_raw(args.raw)
    add_above_direct(data)
    sums = summarise(data)
    ratios6 = s6_ratios(data)
    with open(args.notes) as f:
        notes = [n.strip() for n in f if n.strip()]
    rows = targets(sums, ratios6)

    with open(args.out + ".md", "w") as f:
        f.write(markdown(meta, sums, ratios6, notes, rows,
                         {"rr-acl": paired_ratios(data, "rr-acl"), "rr-base": paired_ratios(data, "rr-base")}, load_syscalls(args.syscalls)))
    doc = {
        "meta": meta,
        "results": sums,
        "s6_ratio_2w_over_1w": ratios6,
        "syscalls_per_unit": load_syscalls(args.syscalls),
        "targets": [{"target": t, "measured": m, "verdict": v} for t, m, v in rows],
        "notes": notes,
        "labels": LABELS,
        "metrics": {k: {"label": v[0], "better": "higher" if v[1] > 0 else "lower"} for k, v in METRICS.items()},
    }
    with open(args.out + ".json", "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    plot_files(meta, sums, args.plot_dir, os.path.abspath(args.out))


if __name__ == "__main__":
    main()
