"""The whole chain with distinct addresses, in network namespaces: a client
host, a front load balancer host (HAProxy send-proxy-v2, nginx stream
proxy_protocol on, and nginx http proxy_pass as the classic mistake), the
ringrelay host, and a gateway host running nginx `listen ... ssl
proxy_protocol` in place of Kong. The gateway must see the client host's own
address whichever way the connection came."""

import harness
from harness import check
from peers.daemons import HAPROXY_TOP, NGINX_STREAM_MODULE, NGINX_TEMPS, NGINX_TOP, make_cert
from peers.netns import Lan, LanDaemon

from .base import case

# Kong's stand-in: 8443 with proxy_protocol (right), 8444 without (the
# second classic mistake).
GATEWAY_CONF = NGINX_TOP + """\
http {{
    log_format gw '$proxy_protocol_addr $remote_addr "$request" $status';
    access_log {dir}/access.log gw;
    ssl_certificate {crt};
    ssl_certificate_key {key};
""" + NGINX_TEMPS + """\
    server {{
        listen {gw}:8443 ssl proxy_protocol;
        location / {{ default_type text/plain; return 200 "$proxy_protocol_addr\\n"; }}
    }}
    server {{
        listen {gw}:8444 ssl;
        location / {{ default_type text/plain; return 200 "no proxy protocol\\n"; }}
    }}
}}
"""

# nginx stream with proxy_protocol on (right), and an http-block proxy_pass
# to the relay's TLS port (the first classic mistake).
FRONT_NGINX_CONF = NGINX_STREAM_MODULE + NGINX_TOP + """\
stream {{
    server {{
        listen {front}:444;
        proxy_pass {relay}:443;
        proxy_protocol on;
    }}
}}
http {{
    access_log off;
""" + NGINX_TEMPS + """\
    server {{
        listen {front}:8080;
        location / {{ proxy_pass https://{relay}:443; }}
    }}
}}
"""

FRONT_HAPROXY_CONF = HAPROXY_TOP + """\
frontend front
    bind {front}:443
    default_backend relay
backend relay
    server relay {relay}:443 send-proxy-v2
"""


FORGE = """
import socket, struct, sys
s = socket.create_connection((sys.argv[1], 443), timeout=5)
hdr = b"\\r\\n\\r\\n\\x00\\r\\nQUIT\\n\\x21\\x11" + struct.pack("!H", 12)
hdr += socket.inet_aton("6.6.6.6") + socket.inet_aton(sys.argv[1]) + struct.pack("!HH", 666, 443)
s.sendall(hdr + b"GET / HTTP/1.1\\r\\n\\r\\n")
try:
    while s.recv(4096):
        pass
except OSError:
    pass
"""


def curl(lan, url):
    """curl from the client host; returns (exit status, body)."""
    p = lan.run("client", ["curl", "-sk", "--max-time", "10", url], timeout=30)
    return p.returncode, p.stdout.decode(errors="replace")


@case("topology_netns_whole_chain", budget=120)
def topology(ctx):
    lan = Lan(ctx)
    client, front, rly, gw = (lan.addr(h) for h in ("client", "front", "relay", "gateway"))
    crt, key = make_cert(ctx.session_dir)
    gateway = LanDaemon(ctx, lan, "gateway", "gateway-nginx", "nginx", GATEWAY_CONF,
                        {"gw": gw, "crt": crt, "key": key}, [8443, 8444])
    relay = harness.start_relay(ctx, [
        "--listen", f"{rly}:443", "--backend", f"{gw}:8443", "--proxy-protocol-in", "any",
        "--trusted-source", f"{front}/32"], "relay", wrapper=lan.prefix("relay"))
    relay_no_pp = harness.start_relay(ctx, [
        "--listen", f"{rly}:8444", "--backend", f"{gw}:8444"], "relay-to-8444",
        wrapper=lan.prefix("relay"))
    hosts = {"front": front, "relay": rly}
    LanDaemon(ctx, lan, "front", "front-haproxy", "haproxy", FRONT_HAPROXY_CONF, hosts, [443])
    LanDaemon(ctx, lan, "front", "front-nginx", "nginx", FRONT_NGINX_CONF, hosts, [444, 8080])

    paths = {"client -> ringrelay -> gateway": f"https://{rly}:443/",
             "client -> HAProxy -> ringrelay -> gateway": f"https://{front}:443/",
             "client -> nginx stream -> ringrelay -> gateway": f"https://{front}:444/"}
    for path, url in paths.items():
        code, body = curl(lan, url)
        check(code == 0 and body == f"{client}\n",
              f"{path}: curl exit {code}, gateway answered {body!r}, want {client!r}")
    lines = harness.wait_until(lambda: len(gateway.file("access.log").splitlines()) >= 3 and
                               gateway.file("access.log").splitlines(), 10, "gateway access log")
    for line in lines:
        check(line.split()[:2] == [client, rly], f"gateway logged {line!r}, want the client "
                                                 f"{client} by way of the relay {rly}")

    # A client that forges its address is refused; the gateway never sees it.
    lan.run("client", ["python3", "-c", FORGE, rly])
    harness.wait_until(lambda: "is not a --trusted-source: refused" in relay.stderr(), 5,
                       "the relay to refuse the forged header")
    check(f"client {client}:" in relay.stderr(), "the refusal does not name the client")
    check("6.6.6.6" not in gateway.file("access.log"), "the forged address reached the gateway")

    # Classic 1: nginx http proxy_pass cannot send a header; a 502 at the
    # front, and the relay says why.
    code, body = curl(lan, f"http://{front}:8080/")
    check("502" in body, f"front nginx answered {body!r}, expected its 502 page")
    harness.wait_until(lambda: "expected a PROXY header, got a TLS ClientHello" in
                       relay.stderr(), 5, "the relay to name the ClientHello")
    check(f"client {front}:" in relay.stderr(), "the diagnosis does not name the front host")

    # Classic 2: the gateway port lacks proxy_protocol; the relay says so.
    code, body = curl(lan, f"https://{rly}:8444/")
    check(code != 0, f"curl through a header the gateway cannot read succeeded: {body!r}")
    harness.wait_until(lambda: "probably does not expect PROXY protocol" in
                       relay_no_pp.stderr(), 5, "the relay to name the gateway's mistake")
    check(f"backend {gw}:8444" in relay_no_pp.stderr(), "the diagnosis does not name the backend")
    ctx.note("3 chains delivered the client address; forgery refused; both mistakes named")
