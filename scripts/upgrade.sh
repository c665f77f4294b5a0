#!/bin/sh
# Hot upgrade of a running ringrelay with no connection refused or reset.
#
#   1. install the new binary over the old one's path (install(1) or cp to a
#      temporary name, then mv: the running process keeps its own copy);
#   2. run: scripts/upgrade.sh [PID]
#
# The script sends SIGUSR2: the relay starts the binary now at its path
# beside itself (SO_REUSEPORT: both accept for a moment), the new process
# takes over once its listeners are open (under systemd it becomes the
# service's main process), and the old one serves what its listen queues
# hold, closes them, and drains its open connections (drain_timeout). If the
# new binary fails to start, the old one keeps running and this exits 1.
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

kill -USR2 "$pid"
new=
i=0
while [ -z "$new" ]; do
    new=$(pgrep -P "$pid" -x ringrelay || true)
    i=$((i + 1))
    [ $i -le 100 ] || die "pid $pid started no new process (see its log)"
    [ -n "$new" ] || sleep 0.1
done
echo "upgrade: new process $new started beside $pid"
i=0
while running "$pid"; do
    running "$new" || die "the new process $new exited (see the log); $pid keeps running"
    i=$((i + 1))
    [ $i -le $((wait_s * 10)) ] || die "$pid still draining after ${wait_s}s"
    sleep 0.1
done
running "$new" || die "the new process $new is gone"
echo "upgrade: done: $pid drained and exited, $new serves"
