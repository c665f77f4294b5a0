#!/usr/bin/env bash
# scripts/loadtest.sh: load-tests a deployed relay with wrk and prints one
# summary: request rate, latency percentiles, errors and, when given, the
# relay's CPU time and its stats-socket counters before and after.
set -uo pipefail

usage() {
    cat <<'EOF'
usage: scripts/loadtest.sh URL [options]

Runs wrk against URL (http:// or https://, through the relay) and prints one
summary: requests/s, latency p50/p90/p99, errors, and the relay's CPU time.

  --duration DUR        how long to load: 30s, 2m (default 30s)
  --connections N       concurrent connections (default 64)
  --threads N           wrk threads (default: CPUs here, at most N connections)
  --pid PID             the relay's process id (same machine): report its CPU
                        seconds over the run and per request
  --stats-socket PATH   ringrelay's stats socket: read its counters before and
                        after and print what changed (if the socket is absent
                        this is said in one line and the test goes on)
  -h, --help

Exits 1 when wrk fails or reports errors, 0 otherwise.

Example: scripts/loadtest.sh https://relay.example:443/ --duration 1m \
             --connections 128 --pid "$(pidof ringrelay)"
EOF
}

die() {
    echo "loadtest: $*" >&2
    exit 2
}

URL=
DURATION=30s
CONNS=64
THREADS=
PID=
SOCK=

parse_args() {
    while (($#)); do
        case $1 in
        --duration) DURATION=${2:-}; shift ;;
        --connections) CONNS=${2:-}; shift ;;
        --threads) THREADS=${2:-}; shift ;;
        --pid) PID=${2:-}; shift ;;
        --stats-socket) SOCK=${2:-}; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; exit 2 ;;
        *) [[ -z $URL ]] || die "one URL only"; URL=$1 ;;
        esac
        shift
    done
    [[ $URL =~ ^https?:// ]] || { usage >&2; exit 2; }
    [[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "--duration: a number with s, m or h, e.g. 30s"
    [[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "--connections: a positive number"
    if [[ -z $THREADS ]]; then
        THREADS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    fi
    [[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads: a positive number"
    ((THREADS > CONNS)) && THREADS=$CONNS
    if [[ -n $PID ]]; then
        [[ $PID =~ ^[0-9]+$ && -r /proc/$PID/stat ]] || die "--pid $PID: no such process here"
    fi
    command -v wrk >/dev/null || die "wrk not found (Debian: apt-get install wrk)"
}

# utime+stime of every thread of pid, in clock ticks: the larger of the sum
# over live threads and the thread group's total (which keeps exited ones).
cpu_ticks() {
    local s t sum=0 group f
    read -r s 2>/dev/null <"/proc/$1/stat" || return 1
    s=${s##*) }
    read -ra f <<<"$s"
    group=$((f[11] + f[12]))
    for t in /proc/"$1"/task/*/stat; do
        read -r s 2>/dev/null <"$t" || continue
        s=${s##*) }
        read -ra f <<<"$s"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum $group"
}

# Reads ringrelay's counters in the Prometheus text format ("show metrics"
# on the stats socket, 2 s at most).
stats_read() {
    python3 - "$SOCK" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"show metrics\n")
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except socket.timeout:
    pass
sys.stdout.write(data.decode("utf-8", "replace"))
EOF
}

# Prints "counter{labels} +delta" for every counter (a *_total sample, not
# a histogram bucket) that changed between two readings.
stats_diff() {
    awk '
    /^#/ || !/_total[{ ]/ { next }
    { v = $NF; $NF = ""; sub(/ $/, ""); if (FNR == NR) before[$0] = v; else after[$0] = v }
    END {
        for (k in after)
            if (after[k] != before[k])
                printf "\n    %s +%d", k, after[k] - before[k]
        print ""
    }' <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

# Turns wrk --latency output into "k=v" pairs (latencies in milliseconds).
wrk_figures() {
    awk '
    function ms(v) {
        if (v ~ /us$/) return v / 1000
        if (v ~ /ms$/) return v + 0
        if (v ~ /s$/) return v * 1000
        return v
    }
    / requests in / { req = $1 }
    /^ +50% / { p50 = ms($2) }
    /^ +90% / { p90 = ms($2) }
    /^ +99% / { p99 = ms($2) }
    /Socket errors:/ { gsub(/,/, ""); conn = $4; rd = $6; wr = $8; to = $10 }
    /Non-2xx or 3xx/ { bad = $5 }
    /^Requests\/sec:/ { rps = $2 }
    END {
        printf "requests=%d rps=%s p50=%.2f p90=%.2f p99=%.2f connect=%d read=%d write=%d timeout=%d non2xx=%d\n",
            req, rps, p50, p90, p99, conn, rd, wr, to, bad
    }'
}

kv() {
    local w
    for w in $2; do
        [[ $w == "$1="* ]] && { echo "${w#*=}"; return; }
    done
}

main() {
    local raw fig before='' after='' s_before='' s_after='' sock_note='' hz errs cpu
    parse_args "$@"
    if [[ -n $SOCK ]]; then
        if [[ -S $SOCK ]]; then
            s_before=$(stats_read) || sock_note="stats socket $SOCK could not be read; relay counters skipped"
            [[ -z $sock_note ]] || echo "loadtest: $sock_note" >&2
        else
            sock_note="stats socket $SOCK not found; relay counters skipped"
            echo "loadtest: $sock_note" >&2
        fi
    fi
    [[ -n $PID ]] && before=$(cpu_ticks "$PID")
    raw=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$URL" 2>&1)
    [[ -n $PID ]] && after=$(cpu_ticks "$PID")
    [[ -n $SOCK && -z $sock_note ]] && s_after=$(stats_read)
    if ! grep -q '^Requests/sec:' <<<"$raw"; then
        echo "loadtest: wrk failed:" >&2
        echo "$raw" >&2
        exit 1
    fi
    fig=$(wrk_figures <<<"$raw")
    errs=$(($(kv connect "$fig") + $(kv read "$fig") + $(kv write "$fig") + $(kv timeout "$fig") + $(kv non2xx "$fig")))

    echo "ringrelay load test: $URL, $DURATION, $CONNS connections, $THREADS wrk threads"
    printf '  requests/s   %s  (%s requests)\n' "$(kv rps "$fig")" "$(kv requests "$fig")"
    printf '  latency      p50 %s ms   p90 %s ms   p99 %s ms\n' "$(kv p50 "$fig")" "$(kv p90 "$fig")" "$(kv p99 "$fig")"
    printf '  errors       %d  (connect %s, read %s, write %s, timeout %s, non-2xx/3xx %s)\n' "$errs" \
        "$(kv connect "$fig")" "$(kv read "$fig")" "$(kv write "$fig")" "$(kv timeout "$fig")" "$(kv non2xx "$fig")"
    if [[ -n $before && -n $after ]]; then
        hz=$(getconf CLK_TCK)
        cpu=$(awk -v a="$before" -v b="$after" -v hz="$hz" -v n="$(kv requests "$fig")" 'BEGIN {
            split(a, x, " "); split(b, y, " "); dt = y[1] - x[1]; dg = y[2] - x[2]
            s = (dt > dg ? dt : dg) / hz
            printf "%.2f s over the run, %.1f µs per request", s, (n > 0 ? s * 1e6 / n : 0) }')
        printf '  relay CPU    %s (pid %s)\n' "$cpu" "$PID"
    elif [[ -n $PID ]]; then
        printf '  relay CPU    pid %s exited during the run\n' "$PID"
    fi
    if [[ -n $SOCK && -z $sock_note ]]; then
        printf '  relay stats  %s\n' "$(stats_diff "$s_before" "$s_after")"
    fi
    ((errs == 0))
}

main "$@"
