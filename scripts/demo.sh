#!/bin/sh
# Demo (what `make run` executes): nginx on 127.0.0.1:9443 terminates TLS and
# reads the PROXY header; ringrelay on 127.0.0.1:8443 forwards to it. Curl the
# relay and nginx answers with your address as the relay reported it.
# Usage: scripts/demo.sh BINARY. Ctrl-C stops both.
set -eu

RELAY_ADDR=127.0.0.1:8443
RELAY_PORT=8443
BACKEND_ADDR=127.0.0.1:9443
BACKEND_PORT=9443
WAIT_TRIES=100 # x 0.1 s between checks: at most 10 s for each daemon to come up

die() {
    echo "demo: $*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: scripts/demo.sh BINARY"
[ -x "$1" ] || die "$1: not an executable file (run make first)"
command -v nginx >/dev/null || die "nginx is not installed (make deps)"
command -v openssl >/dev/null || die "openssl is not installed (make deps)"
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

cd "$(dirname "$0")/.."
mkdir -p build/demo
DEMO=$(cd build/demo && pwd)

# True if some socket listens on TCP port $1 (v4 or v6), from /proc/net/tcp*.
listening() {
    awk -v port="$(printf ':%04X' "$1")" \
        'substr($2, length($2) - 4) == port && $4 == "0A" { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Poll (bounded) until command "$@" succeeds; fail if process $pid dies first.
wait_for() {
    what=$1 pid=$2
    shift 2
    i=0
    until "$@"; do
        kill -0 "$pid" 2>/dev/null || die "$what exited before it was ready"
        i=$((i + 1))
        [ "$i" -le "$WAIT_TRIES" ] || die "$what not ready after $((WAIT_TRIES / 10)) s"
        sleep 0.1
    done
}

listening "$RELAY_PORT" && die "port $RELAY_PORT is already in use"
listening "$BACKEND_PORT" && die "port $BACKEND_PORT is already in use"

if [ ! -f "$DEMO/cert.pem" ] || [ ! -f "$DEMO/key.pem" ]; then
    echo "demo: generating a self-signed certificate in build/demo/"
    openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 30 \
        -keyout "$DEMO/key.pem" -out "$DEMO/cert.pem" 2>/dev/null
fi

cat >"$DEMO/nginx.conf" <<EOF
worker_processes 1;
pid $DEMO/nginx.pid;
error_log $DEMO/nginx-error.log;
events { worker_connections 256; }
http {
    log_format relayed '\$proxy_protocol_addr:\$proxy_protocol_port via \$remote_addr "\$request" \$status';
    access_log $DEMO/nginx-access.log relayed;
    client_body_temp_path $DEMO/tmp;
    proxy_temp_path $DEMO/tmp;
    fastcgi_temp_path $DEMO/tmp;
    uwsgi_temp_path $DEMO/tmp;
    scgi_temp_path $DEMO/tmp;
    server {
        listen $BACKEND_ADDR ssl proxy_protocol;
        ssl_certificate $DEMO/cert.pem;
        ssl_certificate_key $DEMO/key.pem;
        location / {
            default_type text/plain;
            return 200 "your address as the backend saw it: \$proxy_protocol_addr\n";
        }
    }
}
EOF

nginx_pid= relay_pid= tail_pid=
stop() {
    trap - INT TERM EXIT
    for pid in $relay_pid $nginx_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $relay_pid $nginx_pid; do
        wait "$pid" 2>/dev/null || true
    done
    # tail prints the relay's last lines, then exits by itself (--pid).
    [ -z "$tail_pid" ] || wait "$tail_pid" 2>/dev/null || true
    echo "demo: stopped"
}
trap 'stop; exit 0' INT TERM
trap 'stop' EXIT

nginx -e "$DEMO/nginx-error.log" -p "$DEMO" -c "$DEMO/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
wait_for nginx "$nginx_pid" listening "$BACKEND_PORT"
echo "demo: nginx backend on $BACKEND_ADDR (TLS, PROXY protocol; logs in build/demo/)"

: >"$DEMO/relay.log"
"$BIN" --listen "$RELAY_ADDR" --backend "$BACKEND_ADDR" 2>"$DEMO/relay.log" &
relay_pid=$!
tail -n +1 -f -s 0.2 --pid="$relay_pid" "$DEMO/relay.log" >&2 &
tail_pid=$!
wait_for ringrelay "$relay_pid" grep -q 'ready:' "$DEMO/relay.log"

echo
echo "Try it from another terminal:"
echo
echo "    curl -k https://$RELAY_ADDR/"
echo
echo "nginx answers with your own address as the relay passed it on. Ctrl-C stops both."
echo

status=0
wait "$relay_pid" || status=$?
relay_pid=
echo "demo: ringrelay exited with status $status" >&2
exit "$status"
