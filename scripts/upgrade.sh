#!/bin/sh
# Hot upgrade of a running ringrelay with no connection refused or reset.
#
#   1. install the new binary over the old one's path (install(1) or cp to a
#      temporary name, then mv: the running process keeps its own copy), or
#      switch the symlink it was started through;
#   2. run: scripts/upgrade.sh [PID]
#
# The script sends SIGUSR2: the relay starts what the path it was started by
# names now (through a symlink switched since, too) beside itself; the new
# process inherits the old one's listening sockets (both accept for a
# moment), takes over once it is ready (under systemd it becomes the
# service's main process), and the old one serves what it accepted, lets go
# of the sockets, and drains its open connections (drain_timeout). If the
# new binary fails to start, the old one keeps running and this exits 1.
# The new process is the one the kernel lists as the old one's child since
# the signal; the script says which binary and version each runs, and notes
# when they are the same (a restart, not an upgrade).
#
# PID defaults to systemd's MainPID of ringrelay.service, else the only
# ringrelay process. Where several run, give the one to upgrade: under
# systemd `systemctl show -p MainPID --value ringrelay`, otherwise `pgrep -a
# -x ringrelay` tells them apart by their command lines.
set -eu

wait_s=${RINGRELAY_UPGRADE_WAIT:-60}   # seconds the old process may take to drain

die() { echo "upgrade: $*" >&2; exit 1; }

running() { # a pid that exists and is not a zombie
    [ -r "/proc/$1/stat" ] && [ "$(cut -d')' -f2 "/proc/$1/stat" | cut -d' ' -f2)" != Z ]
}

pid=${1:-}
if [ -z "$pid" ] && command -v systemctl >/dev/null 2>&1; then
    pid=$(systemctl show -p MainPID --value ringrelay.service 2>/dev/null || true)
    [ "$pid" = 0 ] && pid=
fi
if [ -z "$pid" ]; then
    pid=$(pgrep -x ringrelay || true)
    case $(echo "$pid" | wc -w) in
    1) ;;
    0) die "no ringrelay process runs; usage: upgrade.sh [PID]" ;;
    *) die "$(echo $pid | wc -w) ringrelay processes run ($(echo $pid)): give the pid of the" \
           "one to upgrade: upgrade.sh PID (systemctl show -p MainPID --value ringrelay;" \
           "pgrep -a -x ringrelay shows their command lines)" ;;
    esac
fi
running "$pid" || die "no process $pid"

if [ "$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo 1)" = 0 ]; then
    echo "upgrade: note: net.ipv4.tcp_migrate_req is 0: a connection that lands in an old" \
         "listen queue in the microseconds before it closes is reset; 1 moves it to the" \
         "new process (sysctl -w net.ipv4.tcp_migrate_req=1)" >&2
fi

# What the running binary is: the successor must be another (a new inode
# at the start path) or another version; said either way.
binary() { stat -L -c %d:%i "/proc/$1/exe" 2>/dev/null || echo "?"; }
version() { "/proc/$1/exe" --version 2>/dev/null | head -n 1 || true; }
exe() { readlink "/proc/$1/exe" 2>/dev/null || echo "?"; }
children() { # exactly the kernel's list of $1's children, less zombies
    for c in $(cat "/proc/$1/task/"*/children 2>/dev/null); do
        if running "$c"; then echo "$c"; fi
    done
}
stats_socket() { # the path of the unix socket $1 listens on (its stats socket), if any
    inodes=$(for f in "/proc/$1/fd/"*; do readlink "$f"; done 2>/dev/null |
             sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p')
    [ -n "$inodes" ] || return 0
    # The kernel shows the name it was bound to: PATH.PID.tmp, renamed to PATH.
    awk -v list=" $(echo $inodes) " -v tmp=".$1.tmp" \
        'NR > 1 && $4 == "00010000" && index(list, " " $7 " ") && $8 ~ /^\// {
             p = $8; if (substr(p, length(p) - length(tmp) + 1) == tmp)
                 p = substr(p, 1, length(p) - length(tmp))
             print p; exit }' /proc/net/unix
}
successor() { # "PID HOW" of the last successor $1 started, as $1 itself tells
    [ -n "$sock" ] || return 0
    "/proc/$1/exe" stats --socket "$sock" --json 2>/dev/null | sed -n \
        "s/.*\"pid\":$1,.*\"successor\":{\"pid\":\([0-9]*\),\"ended\":\"*\([^\"]*\)\"*}.*/\1 \2/p"
}
old_bin=$(binary "$pid") old_ver=$(version "$pid") old_exe=$(exe "$pid")
before=" $(echo $(children "$pid")) "
sock=$(stats_socket "$pid")
prev=$(successor "$pid")

kill -USR2 "$pid"
new=
i=0
while [ -z "$new" ]; do
    for c in $(children "$pid"); do
        case $before in *" $c "*) ;; *) new=$c ;; esac
    done
    [ -n "$new" ] && break
    # One that exits at once is reaped before it is seen: the relay knows.
    last=$(successor "$pid")
    if [ -n "$last" ] && [ "${last%% *}" != "${prev%% *}" ] && [ "${last#* }" != null ]; then
        die "the new process ${last%% *} ${last#* } before it took over; $pid keeps running"
    fi
    i=$((i + 1))
    [ $i -le 100 ] || die "pid $pid started no new process (see its log)"
    sleep 0.1
done
new_bin=$(binary "$new") new_ver=$(version "$new") new_exe=$(exe "$new")
echo "upgrade: new process $new ($new_exe, ${new_ver:-version unknown}) started beside $pid" \
     "($old_exe, ${old_ver:-version unknown})"
if [ "$new_bin" = "$old_bin" ] && [ "$new_ver" = "$old_ver" ]; then
    echo "upgrade: note: $new runs the same binary and version as $pid: nothing new is" \
         "installed at the path $pid was started by, so this restarts it (start-only" \
         "settings apply) rather than upgrading it" >&2
fi
i=0
while running "$pid"; do
    if ! running "$new"; then
        how="exited (see the relay's log)"
        j=0
        while [ $j -lt 10 ]; do # the relay reaps it within a moment
            last=$(successor "$pid")
            if [ "${last%% *}" = "$new" ] && [ "${last#* }" != null ]; then
                how=${last#* }
                break
            fi
            j=$((j + 1))
            sleep 0.1
        done
        die "the new process $new $how before it took over; $pid keeps running"
    fi
    i=$((i + 1))
    [ $i -le $((wait_s * 10)) ] || die "$pid still draining after ${wait_s}s"
    sleep 0.1
done
running "$new" || die "the new process $new is gone"
echo "upgrade: done: $pid drained and exited, $new serves"
