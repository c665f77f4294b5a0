"""Real daemons as peers: nginx terminating TLS behind the relay, HAProxy
in TCP mode with accept-proxy, and either of them as a proxy in front of
the relay. Each runs on a config written into its own directory, is
waited for until it listens, and is stopped when the test ends."""

import os
import shutil
import signal
import subprocess

from harness import (Proc, TestFailure, TestSkip, free_port, is_listening, read_text, tail,
                     wait_until)


def make_cert(directory):
    """A self-signed localhost cert and key in directory (made once)."""
    crt = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if not (os.path.exists(crt) and os.path.exists(key)):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=localhost", "-days", "2", "-keyout", key, "-out", crt],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
        os.chmod(crt, 0o644)
        os.chmod(key, 0o644)
    return crt, key


# Pieces of the nginx and HAProxy configs: str.format templates, {dir}
# being the daemon's own directory.
NGINX_TOP = """\
user root;
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 1024; }}
"""

NGINX_STREAM_MODULE = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"

NGINX_TEMPS = """\
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
"""

HAPROXY_TOP = """\
global
    log stdout format raw local0
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 20s
    timeout server 20s
"""


def require(program):
    if not shutil.which(program):
        raise TestSkip(f"{program} is not installed")


class Daemon(Proc):
    """nginx or HAProxy (kind) named name, its config template filled with
    values and dir (its own directory, ctx.tmpdir/name), run with prefix in
    front of its argv (an `ip netns exec`, say). Subclasses say when it is
    ready in listening()."""

    def __init__(self, ctx, name, kind, template, values, prefix=()):
        require(kind)
        self.kind = kind
        self.dir = os.path.join(ctx.tmpdir, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        conf = os.path.join(self.dir, f"{kind}.conf")
        with open(conf, "w") as f:
            f.write(template.format(dir=self.dir, **values))
        if kind == "haproxy":
            argv = ["haproxy", "-db", "-f", conf]
        else:
            argv = ["nginx", "-e", os.path.join(self.dir, "error.log"), "-p", self.dir,
                    "-c", conf]
        super().__init__(name, list(prefix) + argv, ctx.tmpdir)
        ctx.on_cleanup(self.shutdown)
        wait_until(self._ready, 10, f"{name} to listen")

    def listening(self):
        raise NotImplementedError

    def _ready(self):
        if not self.alive():
            raise TestFailure(f"{self.name} exited: {tail(self.stderr())} {tail(self.stdout())} "
                              f"{tail(self.file('error.log'))}")
        return self.listening()

    def file(self, name):
        """The text of a file in the daemon's directory ("" if there is none)."""
        return read_text(os.path.join(self.dir, name))

    def shutdown(self):
        if self.stop(signal.SIGTERM, 10) is None:
            self.kill()


NGINX_CONF = NGINX_TOP + """\
http {{
    log_format relay '$proxy_protocol_addr $proxy_protocol_port $remote_addr "$request" $status';
    access_log {dir}/access.log relay;
""" + NGINX_TEMPS + """\
    server {{
        listen 127.0.0.1:{port4} ssl{pp};
        listen [::1]:{port6} ssl{pp};
        listen unix:{dir}/tls.sock ssl{pp};
        ssl_certificate {crt};
        ssl_certificate_key {key};
        location / {{
            default_type text/plain;
            return 200 "$proxy_protocol_addr\\n";
        }}
    }}
}}
"""


class Nginx(Daemon):
    """nginx terminating TLS behind the relay, on 127.0.0.1:port4, [::1]:port6
    and unix_path, answering each request with the client address its PROXY
    header gave (with proxy_protocol) and logging it."""

    def __init__(self, ctx, cert_dir, proxy_protocol=True, name="nginx"):
        require("nginx")
        crt, key = make_cert(cert_dir)
        self.port4, self.port6 = free_port(), free_port()
        super().__init__(ctx, name, "nginx", NGINX_CONF,
                         {"port4": self.port4, "port6": self.port6, "crt": crt, "key": key,
                          "pp": " proxy_protocol" if proxy_protocol else ""})

    @property
    def unix_path(self):
        return os.path.join(self.dir, "tls.sock")

    def listening(self):
        return (is_listening(self.port4) and is_listening(self.port6) and
                os.path.exists(self.unix_path))

    def access_lines(self):
        return self.file("access.log").splitlines()


HAPROXY_CONF = HAPROXY_TOP + """\
frontend relayed
    bind 127.0.0.1:{port4} accept-proxy
    bind [::1]:{port6} accept-proxy
    log-format "relayed src=%ci:%cp dst=%fi:%fp bytes=%B authority=%[fc_pp_authority] uid=%[fc_pp_unique_id]"
    default_backend echo
backend echo
    server echo 127.0.0.1:{echo_port}
"""


class HAProxy(Daemon):
    """HAProxy in TCP mode with accept-proxy, forwarding to an echo server and
    logging the source it parsed from the PROXY header to stdout."""

    def __init__(self, ctx, echo_port):
        self.port4, self.port6 = free_port(), free_port()
        super().__init__(ctx, "haproxy", "haproxy", HAPROXY_CONF,
                         {"port4": self.port4, "port6": self.port6, "echo_port": echo_port})

    def listening(self):
        return is_listening(self.port4) and is_listening(self.port6)

    def log_lines(self):
        return [line for line in self.stdout().splitlines() if line.startswith("relayed ")]


FRONT_HAPROXY_CONF = HAPROXY_TOP + """\
frontend front
    bind 127.0.0.1:{port}
    default_backend relay
backend relay
    server relay {target} send-proxy-v2
"""

FRONT_NGINX_STREAM_CONF = NGINX_STREAM_MODULE + NGINX_TOP + """\
stream {{
    server {{
        listen 127.0.0.1:{port};
        proxy_pass {target};
        proxy_protocol on;
    }}
}}
"""

# The classic mistake: an http-block proxy_pass to a TLS upstream cannot send
# a PROXY header, so what reaches the relay first is a ClientHello.
FRONT_NGINX_HTTP_CONF = NGINX_TOP + """\
http {{
""" + NGINX_TEMPS + """\
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://{target};
            proxy_ssl_server_name off;
        }}
    }}
}}
"""

FRONTS = {"haproxy": ("haproxy", FRONT_HAPROXY_CONF),
          "nginx-stream": ("nginx", FRONT_NGINX_STREAM_CONF),
          "nginx-http": ("nginx", FRONT_NGINX_HTTP_CONF)}


class Front(Daemon):
    """A real proxy in front of the relay, listening on 127.0.0.1:port and
    forwarding to target "host:port": kind is haproxy (send-proxy-v2),
    nginx-stream (proxy_protocol on: v1) or nginx-http (proxy_pass https,
    which sends no header)."""

    def __init__(self, ctx, kind, target):
        program, template = FRONTS[kind]
        self.port = free_port()
        super().__init__(ctx, f"front-{kind}", program, template,
                         {"port": self.port, "target": target})

    def listening(self):
        return is_listening(self.port)
