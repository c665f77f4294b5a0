#!/bin/sh
# Install the Debian packages ringrelay builds, tests and benchmarks with,
# but only those that are missing: a machine that has them all is left alone.
set -eu

PKGS="gcc make pkg-config liburing-dev libjemalloc-dev libcriterion-dev libssl-dev
libyaml-dev libsystemd-dev nginx libnginx-mod-stream haproxy wrk openssl curl
python3 iproute2 gnuplot-nox clang libclang-rt-14-dev prometheus systemd linux-perf nftables
iptables"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts nginx and haproxy on install where it can; tests run their own.
for svc in nginx haproxy; do
    pkill -x "$svc" 2>/dev/null || true
done
