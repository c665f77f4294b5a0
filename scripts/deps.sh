#!/bin/sh
# Install the Debian packages ringrelay builds, tests and benchmarks with,
# but only those that are missing: a machine that has them all is left alone.
# Services that come with them (nginx, haproxy, prometheus...) are kept from
# starting while they are installed: the tests run their own instances, and
# a daemon this script did not start is never stopped by it.
set -eu

# What building the relay and its Debian package takes (scripts/deps.sh
# build, as make deb runs it), then what the tests and benchmarks add.
BUILD_PKGS="gcc make pkg-config liburing-dev libjemalloc-dev libssl-dev libyaml-dev
libsystemd-dev libc-ares-dev debhelper dpkg-dev lintian"
PKGS="$BUILD_PKGS libcriterion-dev nginx libnginx-mod-stream haproxy wrk openssl curl
python3 iproute2 gnuplot-nox clang libclang-rt-14-dev prometheus systemd linux-perf nftables
iptables bird2 chromium fonts-dejavu-core dnsmasq-base"
case ${1:-all} in
build) PKGS=$BUILD_PKGS ;;
all) ;;
*) echo "usage: scripts/deps.sh [build|all]" >&2; exit 2 ;;
esac

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

# Debian's invoke-rc.d asks /usr/sbin/policy-rc.d before starting a service;
# exit status 101 means "not now". Ours is put in place only if there is
# none, and removed when this script ends, however it ends.
POLICY=${DEPS_POLICY_RC_D:-/usr/sbin/policy-rc.d} # another path only for its test
ours=""
if [ ! -e "$POLICY" ]; then
    ours=1
    trap '$SUDO rm -f "$POLICY"' EXIT
    trap 'exit 1' INT TERM HUP
    printf '#!/bin/sh\n# ringrelay scripts/deps.sh: no service starts while it installs\nexit 101\n' |
        $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 0755 "$POLICY"
else
    echo "deps: $POLICY exists; leaving it as it is" >&2
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ -n "$ours" ] && echo "deps: installed; no service was started" >&2
exit 0
