#!/usr/bin/env bash
# bench/run.sh: the ringrelay benchmark as /work/shared/BENCH.md describes it.
# Runs scenarios S1-S6 against ringrelay, HAProxy, nginx stream and a direct
# path, side by side in a private network namespace, and writes
# bench/results/<date>-<hash>.{md,json,png}.
set -uo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh [--quick] [--reps N] [--only S1,S2,...] [--contenders LIST]
                    [--relay PATH] [--out NAME] [--keep]

Runs the benchmark in a fresh network namespace: the relay under test on
CPU 1, load generators and backends on CPU 0, one worker per relay.

  (no option)   full run: S1-S6, 5 interleaved repetitions (about 12 minutes),
                and SC: syscalls per request (S2 64 B x 50) and per connection
                (S4) of each contender, counted by perf in the first repetition
  --quick       one repetition of a subset, shorter (under 2 minutes)
  --reps N      repetitions (default 5; 1 with --quick)
  --only LIST   run only these scenarios, e.g. --only S1,S5
  --contenders LIST
                run only these contenders where they apply: rr, rr-epoll,
                rr-copy, rr-splice, rr-admin, rr-acl (S4, after rr), haproxy,
                haproxy-splice, nginx, direct, rr-w1, rr-w2 (a partial run:
                no ratio is complete without the anchors)
  --relay PATH  ringrelay binary (default build/ringrelay)
  --baseline PATH
                another ringrelay binary (the code before a change), run as
                contender rr-base right after rr wherever rr runs; the
                results pair the two within each repetition
  --out NAME    results base name in bench/results/ (default
                <YYYY-MM-DD>-<short hash>, with -quick appended for --quick)
  --keep        keep the work directory (configs, logs, raw numbers)
  --profile     perf record (cpu-clock, call graphs) each relay while its load
                runs; bench/results/NAME-profile.md says where the CPU goes
                (kernel paths, user space, hottest functions)
  -h, --help

Results: bench/results/NAME.md (medians, min-max, ratios against HAProxy),
NAME.json (every number) and NAME.png and NAME.svg (headline ratios and
figures); a complete full run also points bench/results/latest.{md,json,png,svg}
at its files.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/bench/build
NGINX_STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

MODE=full
REPS=
ONLY=
PICK=
RELAY=$ROOT/build/ringrelay
BASELINE= # another ringrelay binary: contender rr-base, right after rr
OUT=
KEEP=0
PROFILE=0
PERF_PID=

die() {
    echo "bench: $*" >&2
    exit 1
}

parse_args() {
    while (($#)); do
        case $1 in
        --quick) MODE=quick ;;
        --reps) REPS=${2:?--reps needs a number}; shift ;;
        --only) ONLY=${2:?--only needs a list}; shift ;;
        --contenders) PICK=${2:?--contenders needs a list}; shift ;;
        --relay) RELAY=${2:?--relay needs a path}; shift ;;
        --baseline) BASELINE=${2:?--baseline needs a path}; shift ;;
        --out) OUT=${2:?--out needs a name}; shift ;;
        --keep) KEEP=1 ;;
        --profile) PROFILE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
        esac
        shift
    done
    [[ -z $REPS || $REPS =~ ^[1-9][0-9]?$ ]] || die "--reps: a number from 1 to 99"
}

# Everything the run needs, checked before entering the namespace.
preflight() {
    local t
    (($(id -u) == 0)) || die "run as root (network namespace, taskset, nginx)"
    [[ -x $RELAY ]] || die "$RELAY not found: run make first"
    for t in haproxy nginx wrk gnuplot openssl unshare taskset ip ss python3; do
        command -v "$t" >/dev/null || die "$t not found: run scripts/deps.sh"
    done
    command -v perf >/dev/null || die "perf not found (linux-perf): --profile and the syscall counts use it"
    [[ -f $NGINX_STREAM_MODULE ]] || die "$NGINX_STREAM_MODULE missing: install libnginx-mod-stream"
    make --no-print-directory -C "$ROOT/bench" tools >/dev/null || die "building the load tools failed"
}

# ---------------------------------------------------------------- settings

# Durations are far shorter than BENCH.md's (10 s, 8 s) so that five
# repetitions of every contender fit in about twelve minutes; the medians of
# five interleaved runs carry the precision instead.
settings() {
    D_BULK=2            # S1 seconds
    D_PING=1            # S2 measured seconds, after the warm-up below
    W_PING=0.25
    D_WRK=2             # S3, S4 seconds (wrk takes whole seconds)
    N_IDLE=8000         # S5 connections
    WRK_CONNS=64
    S2_CASES="64:50 64:500 1024:50 1024:500"
    S6_CASES="S2:64:500 S4"
    SCENARIOS="S1 S2 S3 S4 S5 S6 SC"
    if [[ $MODE == quick ]]; then
        S2_CASES="64:50 1024:500"
        S6_CASES="S4"
        : "${REPS:=1}"
    fi
    : "${REPS:=5}"
    [[ -n $ONLY ]] && SCENARIOS=${ONLY//,/ }
    if [[ -n $BASELINE ]]; then
        CONTENDERS_S1=${CONTENDERS_S1/rr /rr rr-base }
        CONTENDERS_MAIN=${CONTENDERS_MAIN/rr /rr rr-base }
        CONTENDERS_S5=${CONTENDERS_S5/rr /rr rr-base }
        CONTENDERS_SC=${CONTENDERS_SC/rr /rr rr-base }
    fi
    if [[ -n $PICK ]]; then
        # The baseline runs wherever rr does, listed or not.
        [[ -n $BASELINE && ,$PICK, == *,rr,* ]] && PICK+=,rr-base
        CONTENDERS_S1=$(pick "$CONTENDERS_S1")
        CONTENDERS_MAIN=$(pick "$CONTENDERS_MAIN")
        CONTENDERS_S5=$(pick "$CONTENDERS_S5")
        CONTENDERS_S6=$(pick "$CONTENDERS_S6")
        CONTENDERS_S4_EXTRA=$(pick "$CONTENDERS_S4_EXTRA")
        CONTENDERS_SC=$(pick "$CONTENDERS_SC")
    fi
    local s
    for s in $SCENARIOS; do
        [[ $s =~ ^S[1-6]$|^SC$ ]] || die "unknown scenario $s"
    done
}

# Prints the names in list $1 that --contenders names.
pick() {
    local c
    for c in $1; do
        [[ ,$PICK, == *,$c,* ]] && printf '%s ' "$c"
    done
}

# Ports: backends 7xxx, relays 9xxx, all below the ephemeral range set in
# the namespace (10000-65535) so no client port can collide with them.
SINK_PORT=7001
ECHO_PORT=7002
HTTPS_PP_PORT=7443  # nginx: ssl proxy_protocol (behind a relay)
HTTPS_PORT=7444     # nginx: ssl (direct)
HTTP_PP_PORT=7080   # nginx: proxy_protocol (behind a relay)
HTTP_PORT=7081      # nginx: plain (direct)

declare -A PORT=(
    [rr]=9001 [rr-epoll]=9002 [rr-copy]=9003 [rr-splice]=9004
    [haproxy]=9005 [haproxy-splice]=9006 [nginx]=9007 [rr-w1]=9008 [rr-w2]=9009
    [rr-admin]=9010 [rr-acl]=9011 [rr-base]=9012
)
ADMIN_PORT=9110 # rr-admin's admin listener, scraped ten times a second

CONTENDERS_S1="rr rr-epoll rr-copy rr-splice haproxy haproxy-splice nginx direct"
# rr-admin: the default relay with its admin listener scraped (/metrics,
# /ready) ten times a second from CPU 0 while the load runs: next to rr, it
# shows what the admin listener costs the data path.
CONTENDERS_MAIN="rr rr-admin rr-epoll haproxy haproxy-splice nginx direct"
# rr-acl: the default relay with a listener's deny and allow lists and its
# per-source rate limit in force (none refuses anyone), in S4, where every
# request is a new connection: next to rr, it shows what they cost.
CONTENDERS_S4_EXTRA="rr-acl"
CONTENDERS_S5="rr rr-epoll haproxy haproxy-splice nginx"
CONTENDERS_S6="rr-w1 rr-w2"
CONTENDERS_SC="rr rr-epoll haproxy haproxy-splice nginx"

# ----------------------------------------------------------- process control

declare -A LIVE=() # pid -> name of every process started in the background
SPAWNED=
RUN_ID=0

# Starts "$@" on CPUs $2 in the background, output in log/NAME-RUN.{out,err}.
# Sets SPAWNED to its pid (taskset execs, so it is the program's own pid).
spawn() {
    local name=$1 cpus=$2
    shift 2
    taskset -c "$cpus" "$@" >"$WORK/log/$name-$RUN_ID.out" 2>"$WORK/log/$name-$RUN_ID.err" &
    SPAWNED=$!
    LIVE[$SPAWNED]=$name
}

# True while pid runs (an exited child stays a zombie until reaped).
alive() {
    local s
    read -r s 2>/dev/null <"/proc/$1/stat" || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z ]]
}

# Stops a process started by spawn: SIGTERM, up to 5 s, then SIGKILL.
stop() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 250; i++)); do
        alive "$pid" || break
        sleep 0.02
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "LIVE[$pid]"
}

cleanup() {
    local pid
    trap - EXIT INT TERM
    for pid in "${!LIVE[@]}"; do
        stop "$pid"
    done
    if [[ -n ${WORK:-} && -d $WORK ]]; then
        if ((KEEP)); then
            echo "bench: work directory kept: $WORK" >&2
        else
            rm -rf "$WORK"
        fi
    fi
}

# Polls until a TCP listener on port exists (up to 10 s); fails early when
# pid (if given) has exited.
wait_listen() {
    local port=$1 pid=${2:-} i
    for ((i = 0; i < 500; i++)); do
        [[ -n $(ss -Hltn "sport = :$port") ]] && return 0
        [[ -n $pid ]] && ! alive "$pid" && return 1
        sleep 0.02
    done
    return 1
}

# Polls until file holds a line matching regex, up to tries x 20 ms; fails
# early when pid (if given) has exited.
wait_line() {
    local file=$1 regex=$2 tries=$3 pid=${4:-} i
    for ((i = 0; i < tries; i++)); do
        grep -qE "$regex" "$file" 2>/dev/null && return 0
        [[ -n $pid ]] && ! alive "$pid" && return 1
        sleep 0.02
    done
    return 1
}

# ------------------------------------------------------------- measurement

HZ=$(getconf CLK_TCK)

# Prints "TASKS GROUP": utime+stime in ticks summed over /proc/PID/task/*
# and for the whole thread group (which keeps the time of exited threads).
cpu_ticks() {
    local pid=$1 s t sum=0 group f
    read -r s 2>/dev/null <"/proc/$pid/stat" || { echo "0 0"; return 1; }
    s=${s##*) }
    read -ra f <<<"$s"
    group=$((f[11] + f[12]))
    for t in /proc/"$pid"/task/*/stat; do
        read -r s 2>/dev/null <"$t" || continue
        s=${s##*) }
        read -ra f <<<"$s"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum $group"
}

# The whole machine's busy ticks (/proc/stat's first line: user, nice,
# system, irq, softirq, steal; not idle or iowait): the system view, where
# work in softirq, kernel threads and the peers is counted too.
sys_ticks() {
    local _cpu user nice system idle iowait irq softirq steal
    read -r _cpu user nice system idle iowait irq softirq steal _ </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# CPU seconds between two sys_ticks readings.
sys_seconds() {
    calc "($2 - $1) / $HZ"
}

# CPU seconds between two cpu_ticks readings: the larger of the two views.
cpu_seconds() {
    awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        dt = y[1] - x[1]; dg = y[2] - x[2]
        printf "%.3f", (dt > dg ? dt : dg) / hz }'
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

fd_count() {
    local fds=("/proc/$1/fd"/*)
    echo "${#fds[@]}"
}

# Value of key in a "k=v k=v" line; empty when absent.
kv() {
    local key=$1 w
    for w in $2; do
        [[ $w == "$key="* ]] && { echo "${w#*=}"; return 0; }
    done
    echo ""
}

calc() {
    awk "BEGIN { v = $1; printf \"%.6g\", v }"
}

# Appends one number to the raw results: scenario case contender rep metric value.
emit() {
    [[ -n $6 ]] && printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$WORK/raw.tsv"
}

# Notes something odd for the report and says it now.
note() {
    echo "$*" >>"$WORK/notes.txt"
    echo "bench: NOTE: $*" >&2
}

say() {
    printf '[%s rep %d/%d] %s\n' "$(date +%T)" "$REP" "$REPS" "$*" >&2
}

# ---------------------------------------------------------------- contenders

RELAY_MAIN= # pid to stop
RELAY_PID=  # pid whose CPU and memory count (nginx: the worker)
RELAY_PORT=
SCRAPER=    # rr-admin's scraper, to stop with the relay

# start_ringrelay NAME CPUS WORKERS BACKEND_PORT [ringrelay options]
# A start refused with EADDRINUSE is noted (with the states of the sockets
# still on the port) and tried once more after a second.
start_ringrelay() {
    local name=$1 cpus=$2 workers=$3 bport=$4 log try
    shift 4
    for try in 1 2; do
        spawn "$name" "$cpus" "${RELAY_BIN:-$RELAY}" --listen "127.0.0.1:${PORT[$name]}" \
            --backend "127.0.0.1:$bport" --workers "$workers" "$@"
        RELAY_MAIN=$SPAWNED RELAY_PID=$SPAWNED
        log=$WORK/log/$name-$RUN_ID.err
        if wait_line "$log" 'ready:' 500 "$SPAWNED" && wait_listen "${PORT[$name]}" "$SPAWNED"; then
            [[ -n ${RR_IO[$name]:-} ]] || RR_IO[$name]=$(grep -o 'io=[a-z_]*' "$log" | head -n 1)
            return 0
        fi
        note "$name did not start (try $try, $SCEN $CASE rep $REP): $(tail -n 3 "$log" | tr '\n' ' ')"
        stop "$SPAWNED"
        grep -q 'Address already in use' "$log" || return 1
        note "sockets on port ${PORT[$name]} then: $(ss -Htan "sport = :${PORT[$name]}" |
            awk '{ n[$1]++ } END { for (s in n) printf "%s %d, ", s, n[s] }')"
        sleep 1
    done
    return 1
}
declare -A RR_IO=()

# HAProxy as BENCH.md sets it up: mode tcp, one thread on CPU 1, PROXY v2 to
# the server, optionally with splice forced both ways.
start_haproxy() {
    local name=$1 bport=$2 splice=$3 cfg=$WORK/conf/$1-$2.cfg
    # maxconn covers S5's 8000 idle connections; the pipes splicing needs
    # (maxconn/4 by default) would not fit in 20000 fds, and S1-S4 never
    # splice on more than 500 connections at once, so maxpipes gets 1500.
    {
        printf 'global\n    nbthread 1\n    cpu-map 1/1 1\n    maxconn 8100\n'
        ((splice)) && printf '    maxpipes 1500\n'
        printf '\ndefaults\n    mode tcp\n    maxconn 8100\n'
        printf '    timeout connect 5s\n    timeout client 300s\n    timeout server 300s\n'
        ((splice)) && printf '    option splice-request\n    option splice-response\n'
        printf '\nfrontend in\n    bind 127.0.0.1:%s\n    default_backend out\n\n' "${PORT[$name]}"
        printf 'backend out\n    server s1 127.0.0.1:%s send-proxy-v2\n' "$bport"
    } >"$cfg"
    spawn "$name" 1 haproxy -db -f "$cfg"
    RELAY_MAIN=$SPAWNED RELAY_PID=$SPAWNED
    if ! wait_listen "${PORT[$name]}" "$SPAWNED"; then
        note "$name did not start: $(tail -n 3 "$WORK/log/$name-$RUN_ID.err" | tr '\n' ' ')"
        return 1
    fi
}

# nginx stream: one worker on CPU 1, PROXY protocol to the upstream (nginx
# only sends v1). The master is started on CPU 1 too; the worker is measured.
start_nginx_stream() {
    local name=$1 bport=$2 conf=$WORK/conf/$1-$2.conf i
    cat >"$conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity 10;
worker_rlimit_nofile 20000;
pid $WORK/run/$name.pid;
error_log $WORK/log/$name-error.log warn;
load_module $NGINX_STREAM_MODULE;
events { worker_connections 20000; }
stream {
    server {
        listen 127.0.0.1:${PORT[$name]};
        proxy_pass 127.0.0.1:$bport;
        proxy_protocol on;
        proxy_timeout 300s;
    }
}
EOF
    spawn "$name" 1 nginx -p "$WORK/" -c "$conf" -e "$WORK/log/$name-error.log"
    RELAY_MAIN=$SPAWNED RELAY_PID=
    wait_listen "${PORT[$name]}" "$SPAWNED" ||
        { note "$name did not start: $(tail -n 3 "$WORK/log/$name-error.log" | tr '\n' ' ')"; return 1; }
    for ((i = 0; i < 250; i++)); do
        RELAY_PID=$(pgrep -P "$RELAY_MAIN" | head -n 1)
        [[ -n $RELAY_PID ]] && return 0
        sleep 0.02
    done
    note "$name: no worker process"
    return 1
}

# start_contender NAME BACKEND_PORT DIRECT_PORT: starts a relay in front of
# the backend (or nothing for "direct") and sets RELAY_PORT to where the
# load goes. Returns 1 when the relay did not come up.
start_contender() {
    local name=$1 bport=$2 dport=$3
    RUN_ID=$((RUN_ID + 1))
    RELAY_MAIN='' RELAY_PID='' RELAY_PORT=${PORT[$name]:-$dport}
    case $name in
    direct) return 0 ;;
    rr | rr-w1) start_ringrelay "$name" 1 1 "$bport" ;;
    rr-base) RELAY_BIN=$BASELINE start_ringrelay "$name" 1 1 "$bport" ;;
    rr-w2) start_ringrelay "$name" 0,1 2 "$bport" ;;
    rr-epoll) start_ringrelay "$name" 1 1 "$bport" --io epoll ;;
    rr-copy) start_ringrelay "$name" 1 1 "$bport" --splice never ;;
    rr-splice) start_ringrelay "$name" 1 1 "$bport" --splice always ;;
    rr-admin) start_ringrelay "$name" 1 1 "$bport" --admin-listen "127.0.0.1:$ADMIN_PORT" &&
        start_scraper ;;
    rr-acl) start_ringrelay "$name" 1 1 "$bport" --deny 192.0.2.0/24 --deny 198.51.100.0/24 \
        --deny 203.0.113.0/24 --deny 2001:db8::/32 --allow 127.0.0.0/8 --allow ::1/128 \
        --max-connection-rate-per-source 10000000 ;;
    haproxy) start_haproxy "$name" "$bport" 0 ;;
    haproxy-splice) start_haproxy "$name" "$bport" 1 ;;
    nginx) start_nginx_stream "$name" "$bport" ;;
    *) die "unknown contender $name" ;;
    esac || { stop "$RELAY_MAIN"; RELAY_MAIN=; return 1; }
    profile_start "$name"
}

# Scrapes rr-admin's admin listener ten times a second (as a tight
# Prometheus and a health checker would together), on CPU 0 with the load,
# with bench/scrape (C, one process: a curl per request cost CPU 0 about
# half its time, and a Python loop a visible share, slowing the load
# generator rather than the relay), up and scraping before the load starts.
start_scraper() {
    spawn scraper 0 "$TOOLS/scrape" --period 0.1 --paths /metrics,/ready "127.0.0.1:$ADMIN_PORT"
    SCRAPER=$SPAWNED
    wait_line "$WORK/log/scraper-$RUN_ID.out" '^ok' 500 "$SCRAPER" ||
        note "the scraper did not start ($SCEN $CASE rep $REP)"
}

# --profile: samples the relay under test (every thread) while it runs.
profile_start() {
    [[ $PROFILE == 1 && -n $RELAY_PID ]] || return 0
    mkdir -p "$WORK/perf"
    perf record -q -e cpu-clock -F 1999 -g -p "$RELAY_PID" \
        -o "$WORK/perf/$SCEN-$CASE-$1-$REP.data" >>"$WORK/log/perf.log" 2>&1 &
    PERF_PID=$!
}

profile_stop() {
    [[ -n $PERF_PID ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null
    wait "$PERF_PID" 2>/dev/null
    PERF_PID=
}

# Notes crashes and failed backend connects in ringrelay's log (its last
# line counts connections, rejections and connect errors).
check_relay_log() {
    local name=$1 log=$2 bad counts
    bad=$(grep -iE 'sanitizer|segmentation|abort|assert' "$log" | head -n 2 | tr '\n' ' ')
    [[ -z $bad ]] || note "$name in $SCEN $CASE (rep $REP): $bad"
    counts=$(grep -oE '[0-9]+ (rejected|connect errors|connect timeouts)' "$log" | grep -v '^0 ' | tr '\n' ' ')
    [[ -z $counts ]] || note "$name in $SCEN $CASE (rep $REP): $counts"
}

# Stops the relay and notes it if it died during the run.
stop_contender() {
    local name=$1 log
    profile_stop
    if [[ -n $SCRAPER ]]; then
        stop "$SCRAPER"
        [[ $(grep -c ok "$WORK/log/scraper-$RUN_ID.out") -gt 0 ]] ||
            note "$name: the scraper got no answer in $SCEN $CASE (rep $REP)"
        SCRAPER=
    fi
    [[ -n $RELAY_MAIN ]] || return 0
    if ! alive "$RELAY_MAIN"; then
        note "$name exited during $SCEN $CASE (rep $REP)"
    fi
    stop "$RELAY_MAIN"
    log=$WORK/log/$name-$RUN_ID.err
    [[ $name == rr* ]] && check_relay_log "$name" "$log"
    RELAY_MAIN='' RELAY_PID=''
}

# ------------------------------------------------------------------ backends

ECHO_PID=

start_echo() {
    spawn echo 0 "$TOOLS/echo" 127.0.0.1:$ECHO_PORT
    ECHO_PID=$SPAWNED
    wait_listen $ECHO_PORT "$ECHO_PID" || die "echo backend did not start"
}

# Self-signed ECDSA certificate and a 1 KiB file, world-readable for the
# nginx worker (which does not run as root).
make_www() {
    mkdir -p "$WORK/tls" "$WORK/www"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" \
        2>"$WORK/log/openssl.err" || die "openssl failed: $(cat "$WORK/log/openssl.err")"
    head -c 1024 /dev/zero | tr '\0' x >"$WORK/www/1k"
    chmod 755 "$WORK/tls" "$WORK/www"
    chmod 644 "$WORK/www/1k" "$WORK/tls/cert.pem"
}

# The HTTP backend of S3 and S4: nginx on CPU 0, one worker, four listeners
# (TLS or plain, with or without PROXY protocol for the direct runs).
start_nginx_backend() {
    local conf=$WORK/conf/nginx-backend.conf
    make_www
    mkdir -p "$WORK/ngx"
    cat >"$conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity 01;
worker_rlimit_nofile 20000;
pid $WORK/run/nginx-backend.pid;
error_log $WORK/log/nginx-backend-error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path $WORK/ngx/body;
    proxy_temp_path $WORK/ngx/proxy;
    fastcgi_temp_path $WORK/ngx/fastcgi;
    uwsgi_temp_path $WORK/ngx/uwsgi;
    scgi_temp_path $WORK/ngx/scgi;
    server {
        listen 127.0.0.1:$HTTPS_PP_PORT ssl proxy_protocol;
        listen 127.0.0.1:$HTTPS_PORT ssl;
        listen 127.0.0.1:$HTTP_PP_PORT proxy_protocol;
        listen 127.0.0.1:$HTTP_PORT;
        ssl_certificate $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        root $WORK/www;
    }
}
EOF
    spawn nginx-backend 0 nginx -p "$WORK/" -c "$conf" -e "$WORK/log/nginx-backend-error.log"
    if ! wait_listen $HTTP_PORT "$SPAWNED" || ! wait_listen $HTTPS_PP_PORT "$SPAWNED"; then
        die "nginx backend did not start: $(cat "$WORK/log/nginx-backend-error.log")"
    fi
}

# Starts a sink that writes its counters to $WORK/sink.stats. Sets SINK_PID.
start_sink() {
    rm -f "$WORK/sink.stats"
    spawn sink 0 "$TOOLS/sink" --stats-file "$WORK/sink.stats" 127.0.0.1:$SINK_PORT
    SINK_PID=$SPAWNED
    wait_listen $SINK_PORT "$SINK_PID" || die "sink did not start"
}

# Asks the sink for its counters and prints them (empty after 2 s).
sink_stats() {
    local i
    rm -f "$WORK/sink.stats"
    kill -USR1 "$SINK_PID" 2>/dev/null || return 1
    for ((i = 0; i < 100; i++)); do
        [[ -f $WORK/sink.stats ]] && { cat "$WORK/sink.stats"; return 0; }
        sleep 0.02
    done
    return 1
}

# Stops the sink and prints its final counters.
sink_final() {
    rm -f "$WORK/sink.stats"
    stop "$SINK_PID"
    cat "$WORK/sink.stats" 2>/dev/null
}

# ----------------------------------------------------------------- scenarios

# S1 bulk: blaster (4 connections, 64 KiB writes) -> relay -> sink.
s1_run() {
    local c=$1 out st i cpu sys bytes sbytes hdrs
    start_sink
    if ! start_contender "$c" $SINK_PORT $SINK_PORT; then
        stop "$SINK_PID"
        return
    fi
    out=$(taskset -c 0 "$TOOLS/blaster" -c 4 -d "$D_BULK" ${RELAY_PID:+--cpu-pid "$RELAY_PID"} \
        "127.0.0.1:$RELAY_PORT")
    # The relay may still hold bytes: wait until it closed every backend side.
    for ((i = 0; i < 100; i++)); do
        st=$(sink_stats)
        [[ $(kv open "$st") == 0 && $(kv accepted "$st") -ge 4 ]] && break
        sleep 0.05
    done
    stop_contender "$c"
    st=$(sink_final)
    bytes=$(kv bytes "$out") sbytes=$(kv bytes "$st") cpu=$(kv cpu_s "$out") sys=$(kv sys_cpu_s "$out")
    hdrs=$(($(kv hdr_v1 "$st") + $(kv hdr_v2 "$st")))
    say "S1 $c: $out | sink: $st"
    [[ -z $bytes || $bytes == 0 ]] && { note "S1 $c rep $REP: no bytes sent ($out)"; return; }
    [[ $sbytes == "$bytes" ]] ||
        note "S1 $c rep $REP: blaster sent $bytes bytes, sink got ${sbytes:-?} after the relay"
    [[ $c == direct || $hdrs == 4 ]] ||
        note "S1 $c rep $REP: sink saw $hdrs PROXY headers on $(kv accepted "$st") connections"
    emit S1 bulk "$c" "$REP" gbps "$(kv gbps "$out")"
    [[ -n $cpu ]] && emit S1 bulk "$c" "$REP" cpu_s_per_gb "$(calc "$cpu / ($bytes / 1e9)")"
    [[ -n $sys ]] && emit S1 bulk "$c" "$REP" sys_cpu_s_per_gb "$(calc "$sys / ($bytes / 1e9)")"
}

# S2 small messages: pingpong -> relay -> echo. s2_run CONTENDER SIZE CONNS [SCEN CASE]
s2_run() {
    local c=$1 size=$2 conns=$3 scen=${4:-S2} case=${5:-$2B-$3c} out req cpu sys
    start_contender "$c" $ECHO_PORT $ECHO_PORT || return
    out=$(taskset -c 0 "$TOOLS/pingpong" -c "$conns" -s "$size" -d "$D_PING" -w "$W_PING" \
        ${RELAY_PID:+--cpu-pid "$RELAY_PID"} "127.0.0.1:$RELAY_PORT")
    stop_contender "$c"
    say "$scen $case $c: $out"
    req=$(kv requests "$out") cpu=$(kv cpu_s "$out") sys=$(kv sys_cpu_s "$out")
    [[ -z $req || $req == 0 ]] && { note "$scen $case $c rep $REP: no requests ($out)"; return; }
    [[ $(kv errors "$out") == 0 ]] || note "$scen $case $c rep $REP: pingpong errors ($out)"
    emit "$scen" "$case" "$c" "$REP" rps "$(kv rps "$out")"
    [[ -n $cpu ]] && emit "$scen" "$case" "$c" "$REP" cpu_us_per_req "$(calc "$cpu * 1e6 / $req")"
    emit "$scen" "$case" "$c" "$REP" mean_us "$(kv mean_us "$out")"
    emit "$scen" "$case" "$c" "$REP" p99_us "$(kv p99_us "$out")"
    emit "$scen" "$case" "$c" "$REP" p999_us "$(kv p999_us "$out")"
    [[ -n $sys ]] && emit "$scen" "$case" "$c" "$REP" sys_cpu_us_per_req "$(calc "$sys * 1e6 / $req")"
}

# Runs wrk on CPU 0 and prints its figures as "requests= rps= p50_us= ...".
wrk_run() {
    taskset -c 0 wrk -t1 -c"$WRK_CONNS" -d"${D_WRK}s" --latency -s "$ROOT/bench/wrk-p999.lua" "$@" 2>&1 |
        tee -a "$WORK/log/wrk.log" | awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            if (v ~ /s$/) return v * 1000000
            return v
        }
        / requests in / { req = $1 }
        /^ +50% / { p50 = us($2) }
        /^ +90% / { p90 = us($2) }
        /^ +99% / { p99 = us($2) }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx/ { err += $5 }
        /^Requests\/sec:/ { rps = $2 }
        /^p999_us=/ { p999 = substr($1, 9) }
        END { printf "requests=%s rps=%s p50_us=%s p90_us=%s p99_us=%s p999_us=%s errors=%d\n",
              req, rps, p50, p90, p99, p999, err }'
}

# TIME_WAIT sockets in the namespace (S4 leaves many behind).
time_wait_count() {
    ss -s | awk '/^TCP:/ { for (i = 1; i <= NF; i++) if ($i == "timewait") { sub(/[,)]/, "", $(i + 1)); print $(i + 1) } }'
}

# S3 (TLS, keep-alive) and S4 (plain, Connection: close) through the relay
# to nginx. wrk_scenario KIND CONTENDER [SCEN CASE]: KIND is S3 or S4; the
# figures go under SCEN and CASE (default: KIND, and tls or churn).
wrk_scenario() {
    local kind=$1 c=$2 scen=${3:-$1} case=${4:-} bport dport url out req cpu='' before after tw
    local sys0 sys
    case $kind in
    S3) bport=$HTTPS_PP_PORT dport=$HTTPS_PORT case=${case:-tls} ;;
    S4) bport=$HTTP_PP_PORT dport=$HTTP_PORT case=${case:-churn} ;;
    esac
    start_contender "$c" "$bport" "$dport" || return
    if [[ $kind == S3 ]]; then
        url=https://127.0.0.1:$RELAY_PORT/1k
        set --
    else
        url=http://127.0.0.1:$RELAY_PORT/1k
        set -- -H 'Connection: close'
    fi
    tw=$(time_wait_count)
    [[ -n $RELAY_PID ]] && before=$(cpu_ticks "$RELAY_PID")
    sys0=$(sys_ticks)
    out=$(wrk_run "$@" "$url")
    sys=$(sys_seconds "$sys0" "$(sys_ticks)")
    [[ -n $RELAY_PID ]] && after=$(cpu_ticks "$RELAY_PID") && cpu=$(cpu_seconds "$before" "$after")
    stop_contender "$c"
    say "$scen $case $c: $out${cpu:+ cpu_s=$cpu} sys_cpu_s=$sys (TIME_WAIT before: $tw)"
    req=$(kv requests "$out")
    [[ -z $req || $req == 0 ]] && { note "$scen $case $c rep $REP: wrk made no requests"; return; }
    [[ $(kv errors "$out") == 0 ]] || note "$scen $case $c rep $REP: wrk errors ($out)"
    if [[ $kind == S3 ]]; then
        emit "$scen" "$case" "$c" "$REP" rps "$(kv rps "$out")"
        [[ -n $cpu ]] && emit "$scen" "$case" "$c" "$REP" cpu_us_per_req "$(calc "$cpu * 1e6 / $req")"
        emit "$scen" "$case" "$c" "$REP" p99_us "$(kv p99_us "$out")"
        emit "$scen" "$case" "$c" "$REP" p999_us "$(kv p999_us "$out")"
        emit "$scen" "$case" "$c" "$REP" sys_cpu_us_per_req "$(calc "$sys * 1e6 / $req")"
    else
        emit "$scen" "$case" "$c" "$REP" cps "$(kv rps "$out")"
        [[ -n $cpu ]] && emit "$scen" "$case" "$c" "$REP" cpu_us_per_conn "$(calc "$cpu * 1e6 / $req")"
        emit "$scen" "$case" "$c" "$REP" sys_cpu_us_per_conn "$(calc "$sys * 1e6 / $req")"
    fi
}

# ---- syscalls per unit of work (scenario SC, first repetition only)
#
# perf counts every syscall the contender's process makes, all threads,
# while the load runs: it starts with its counters off, is switched on
# right before the load and off right after it (perf's control fifo, each
# command acknowledged), so the counts are the load's alone. The relay's
# io_uring operations are not syscalls; what they save shows here.
SC_PERF=

syscalls_on() {
    local ctl=$WORK/log/sc-ctl ack=$WORK/log/sc-ack
    rm -f "$ctl" "$ack" && mkfifo "$ctl" "$ack"
    perf stat -x, -e 'syscalls:sys_enter_*' --delay=-1 --control "fifo:$ctl,$ack" \
        -p "$RELAY_PID" -o "$WORK/log/sc-$RUN_ID.csv" >/dev/null 2>&1 &
    SC_PERF=$!
    exec {SC_CTL}>"$ctl" {SC_ACK}<"$ack"
    echo enable >&"$SC_CTL"
    read -r -t 10 -u "$SC_ACK" _ || note "SC: perf did not acknowledge enable"
}

# syscalls_off SCEN CASE CONTENDER UNITS: the counts per unit, total as the
# metric syscalls_per_unit and each call's in syscalls.tsv.
syscalls_off() {
    local scen=$1 case=$2 c=$3 units=$4 csv=$WORK/log/sc-$RUN_ID.csv
    echo disable >&"$SC_CTL"
    read -r -t 10 -u "$SC_ACK" _ || note "SC: perf did not acknowledge disable"
    kill -INT "$SC_PERF" 2>/dev/null
    wait "$SC_PERF" 2>/dev/null
    exec {SC_CTL}>&- {SC_ACK}<&-
    SC_PERF=
    ((units > 0)) || return
    awk -F, -v units="$units" -v cs="$case" -v c="$c" -v out="$WORK/syscalls.tsv" '
        $3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ && $1 > 0 {
            name = substr($3, 20); total += $1
            printf "%s\t%s\t%s\t%.4f\n", cs, c, name, $1 / units >> out
        }
        END { printf "%.4f\n", total / units }' "$csv" >"$WORK/log/sc-total"
    emit "$scen" "$case" "$c" "$REP" syscalls_per_unit "$(cat "$WORK/log/sc-total")"
    say "$scen $case $c: $(cat "$WORK/log/sc-total") syscalls per unit over $units"
}

sc_run() {
    local c=$1 kind=$2 out units
    case $kind in
    S2)
        start_contender "$c" $ECHO_PORT $ECHO_PORT || return
        syscalls_on
        out=$(taskset -c 0 "$TOOLS/pingpong" -c 50 -s 64 -d "$D_PING" -w 0 "127.0.0.1:$RELAY_PORT")
        units=$(kv requests "$out")
        syscalls_off SC S2-64B-50c-per-request "$c" "${units:-0}"
        ;;
    S4)
        start_contender "$c" "$HTTP_PP_PORT" "$HTTP_PORT" || return
        syscalls_on
        out=$(wrk_run -H 'Connection: close' "http://127.0.0.1:$RELAY_PORT/1k")
        units=$(kv requests "$out")
        syscalls_off SC S4-churn-per-connection "$c" "${units:-0}"
        ;;
    esac
    stop_contender "$c"
}

# S5 idle: N connections that send nothing; RSS and fds of the relay before
# and after, once the sink has received every PROXY header.
s5_run() {
    local c=$1 rss0 rss1 fd0 fd1 idle_pid idle_out st hdrs=0 i
    start_sink
    if ! start_contender "$c" $SINK_PORT $SINK_PORT; then
        stop "$SINK_PID"
        return
    fi
    rss0=$(rss_kib "$RELAY_PID") fd0=$(fd_count "$RELAY_PID")
    spawn idle 0 "$TOOLS/idle" -n "$N_IDLE" -d 120 "127.0.0.1:$RELAY_PORT"
    idle_pid=$SPAWNED idle_out=$WORK/log/idle-$RUN_ID.out
    if ! wait_line "$idle_out" '^established=' 3000 "$idle_pid" || grep -q error= "$idle_out"; then
        note "S5 $c rep $REP: idle did not establish: $(cat "$idle_out")"
    else
        for ((i = 0; i < 300; i++)); do
            st=$(sink_stats)
            hdrs=$(($(kv hdr_v1 "$st") + $(kv hdr_v2 "$st")))
            ((hdrs >= N_IDLE)) && break
            sleep 0.1
        done
        rss1=$(rss_kib "$RELAY_PID") fd1=$(fd_count "$RELAY_PID")
    fi
    stop "$idle_pid"
    stop_contender "$c"
    st=$(sink_final)
    say "S5 $c: $(head -n 1 "$idle_out") | rss ${rss0:-?} -> ${rss1:-?} KiB, fds ${fd0:-?} -> ${fd1:-?} | sink: $st"
    [[ -n ${rss1:-} ]] || return
    ((hdrs >= N_IDLE)) || note "S5 $c rep $REP: only $hdrs of $N_IDLE PROXY headers reached the backend"
    emit S5 idle "$c" "$REP" rss_kib_per_conn "$(calc "($rss1 - $rss0) / $N_IDLE")"
    emit S5 idle "$c" "$REP" fds_per_conn "$(calc "($fd1 - $fd0) / $N_IDLE")"
    emit S5 idle "$c" "$REP" rss_mib_total "$(calc "$rss1 / 1024")"
}

# S6: ringrelay with one worker (CPU 1) and two (CPUs 0 and 1).
s6_run() {
    local c=$1 spec=$2 size conns
    case $spec in
    S2:*)
        IFS=: read -r _ size conns <<<"$spec"
        s2_run "$c" "$size" "$conns" S6 "S2-${size}B-${conns}c"
        ;;
    S4) wrk_scenario S4 "$c" S6 S4-churn ;;
    esac
}

# One repetition: every scenario, each contender in turn.
run_rep() {
    local c x spec size conns
    for SCEN in $SCENARIOS; do
        case $SCEN in
        S1)
            CASE=bulk
            for c in $CONTENDERS_S1; do s1_run "$c"; done
            ;;
        S2)
            for spec in $S2_CASES; do
                IFS=: read -r size conns <<<"$spec"
                CASE=${size}B-${conns}c
                for c in $CONTENDERS_MAIN; do s2_run "$c" "$size" "$conns"; done
            done
            ;;
        S3 | S4)
            CASE=$SCEN
            for c in $CONTENDERS_MAIN; do
                wrk_scenario "$SCEN" "$c"
                # Right after rr: the pair meets the same TIME_WAIT backlog,
                # which S4 grows with every contender and which makes
                # connect() dearer for whoever runs once it is full.
                if [[ $SCEN == S4 && $c == rr ]]; then
                    for x in $CONTENDERS_S4_EXTRA; do wrk_scenario "$SCEN" "$x"; done
                fi
            done
            ;;
        S5)
            CASE=idle
            for c in $CONTENDERS_S5; do s5_run "$c"; done
            ;;
        S6)
            for spec in $S6_CASES; do
                CASE=$spec
                for c in $CONTENDERS_S6; do s6_run "$c" "$spec"; done
            done
            ;;
        SC)
            ((REP == 1)) || continue
            for spec in S2 S4; do
                CASE=$spec
                for c in $CONTENDERS_SC; do sc_run "$c" "$spec"; done
            done
            ;;
        esac
    done
}

# ------------------------------------------------------------------- report

write_meta() {
    local c
    {
        echo "name=$OUT"
        echo "mode=$MODE"
        echo "reps=$REPS"
        echo "scenarios=$SCENARIOS"
        echo "date=$(date -u +%FT%TZ)"
        echo "commit=$COMMIT"
        echo "relay_tree_dirty=$(git -C "$ROOT" status --porcelain -- src include Makefile 2>/dev/null | wc -l)"
        echo "relay_version=$("$RELAY" --version 2>&1 | head -n 1)"
        echo "relay_sha256=$(sha256sum "$RELAY" | cut -c1-12)"
        [[ -z $BASELINE ]] || echo "baseline_sha256=$(sha256sum "$BASELINE" | cut -c1-12)"
        for c in "${!RR_IO[@]}"; do echo "relay_io_$c=${RR_IO[$c]}"; done
        echo "haproxy=$(haproxy -v 2>&1 | head -n 1 | awk '{print $3}')"
        echo "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')"
        echo "wrk=$(dpkg-query -W -f='${Version}' wrk 2>/dev/null)"
        echo "kernel=$(uname -r)"
        echo "cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
        echo "cpus=$(getconf _NPROCESSORS_ONLN)"
        echo "durations=S1 ${D_BULK}s; S2 ${D_PING}s after ${W_PING}s warm-up; S3/S4 ${D_WRK}s, wrk -t1 -c$WRK_CONNS; S5 $N_IDLE connections"
        echo "s2_cases=$S2_CASES"
        echo "s6_cases=$S6_CASES"
        echo "elapsed_s=$SECONDS"
    } >"$WORK/meta.env"
}

report() {
    local dir=$ROOT/bench/results term ext
    mkdir -p "$dir"
    write_meta
    touch "$WORK/raw.tsv" "$WORK/notes.txt" "$WORK/syscalls.tsv"
    python3 "$ROOT/bench/report.py" --raw "$WORK/raw.tsv" --meta "$WORK/meta.env" \
        --notes "$WORK/notes.txt" --syscalls "$WORK/syscalls.tsv" --out "$dir/$OUT" \
        --plot-dir "$WORK/plot" ||
        die "report failed"
    term=png
    gnuplot -e 'set terminal pngcairo' 2>/dev/null && term=pngcairo
    (cd "$WORK/plot" && gnuplot -e "term='$term'" plot.gp) >"$WORK/log/gnuplot.log" 2>&1 ||
        note "gnuplot failed: $(head -n 3 "$WORK/log/gnuplot.log")"
    if [[ $PROFILE == 1 ]]; then
        python3 "$ROOT/bench/profile_report.py" --dir "$WORK/perf" --title "$OUT" \
            --out "$dir/$OUT-profile.md" || note "profile report failed"
    fi
    # A complete full run becomes latest.*, the stable name the README embeds.
    if [[ $MODE == full && -z $ONLY && -z $PICK ]]; then
        for ext in md json png svg; do
            ln -sfn "$OUT.$ext" "$dir/latest.$ext"
        done
    fi
    echo "bench: wrote $dir/$OUT.md, .json, .png, .svg ($SECONDS s)" >&2
}

# --------------------------------------------------------------------- main

main() {
    parse_args "$@"
    if [[ ${RINGRELAY_BENCH_NETNS:-} != 1 ]]; then
        preflight
        exec unshare -n env RINGRELAY_BENCH_NETNS=1 "$0" "$@"
    fi
    settings
    COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)
    if [[ -z $OUT ]]; then
        OUT=$(date +%F)-$COMMIT
        [[ -n $ONLY || -n $PICK ]] && OUT+=-partial
        [[ $MODE == quick ]] && OUT+=-quick
    fi

    ip link set lo up || die "cannot bring up lo in the namespace"
    sysctl -qw net.ipv4.ip_local_port_range="10000 65535" net.ipv4.tcp_tw_reuse=1 ||
        die "cannot set the namespace's sysctls"
    ulimit -n "$(ulimit -Hn)" || die "cannot raise the open-file limit"
    taskset -cp 0 $$ >/dev/null || die "cannot pin the runner to CPU 0"

    WORK=$(mktemp -d /tmp/ringrelay-bench.XXXXXX) || die "mktemp failed"
    chmod 755 "$WORK"
    mkdir -p "$WORK/log" "$WORK/conf" "$WORK/run" "$WORK/plot"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    # Every run uses the same binary, even if build/ is rebuilt meanwhile.
    cp "$(readlink -f "$RELAY")" "$WORK/ringrelay" || die "cannot copy $RELAY"
    RELAY=$WORK/ringrelay
    if [[ -n $BASELINE ]]; then
        cp "$(readlink -f "$BASELINE")" "$WORK/ringrelay-base" || die "cannot copy $BASELINE"
        BASELINE=$WORK/ringrelay-base
    fi

    REP=0
    echo "bench: $MODE run, $REPS repetition(s) of $SCENARIOS, results $OUT" >&2
    [[ $SCENARIOS == *S2* || $SCENARIOS == *S6* ]] && start_echo
    [[ $SCENARIOS =~ S3|S4|S6 ]] && start_nginx_backend
    for ((REP = 1; REP <= REPS; REP++)); do
        run_rep
    done
    report
}

main "$@"
