"""Process and port plumbing for the integration suite: the relay under test,
nginx and HAProxy as real peers, loopback ports, and bounded waits."""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:")


class TestFailure(Exception):
    """An assertion about the relay or a peer did not hold."""


class TestSkip(Exception):
    """The test cannot run here; the message says why."""


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def wait_until(predicate, timeout, what, interval=0.01):
    """Poll predicate until it returns a true value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TestFailure(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# Ports are taken below the ephemeral range (32768 and up on this machine), so
# an outgoing connection can never grab one between the check and the bind.
_PORT_LOW, _PORT_HIGH = 20000, 32000
_ports_given = set()


def _port_is_free(port):
    """True if nothing is bound to port on any address, v4 or v6."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A TCP port free on every loopback address and not handed out before."""
    for _ in range(500):
        port = random.randrange(_PORT_LOW, _PORT_HIGH)
        if port not in _ports_given and _port_is_free(port):
            _ports_given.add(port)
            return port
    raise TestFailure("no free TCP port found below 32000")


def _listening_ports(path):
    ports = set()
    try:
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    except FileNotFoundError:
        pass
    return ports


def is_listening(port):
    """True if some socket on this host listens on TCP port, v4 or v6."""
    return port in _listening_ports("/proc/net/tcp") or port in _listening_ports("/proc/net/tcp6")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def tail(text, lines=8):
    return " | ".join(text.strip().splitlines()[-lines:])


class Proc:
    """A child process whose stdout and stderr go to files in the test's dir.

    stop() sends SIGTERM and waits; kill() is the last resort in cleanup."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(workdir, f"{name}.out")
        self.err_path = os.path.join(workdir, f"{name}.err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          env=env, cwd=workdir, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stdout(self):
        return read_text(self.out_path)

    def stderr(self):
        return read_text(self.err_path)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal the process and wait up to timeout; return its status or None."""
        if self.alive():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
        return self.wait(timeout)

    def kill(self):
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(5)


class Relay(Proc):
    """The relay under test, started with the suite's io back end and waited
    for until it logs `ready:`."""

    def __init__(self, ctx, args, name="relay", wrapper=()):
        argv = list(wrapper) + [ctx.binary] + list(args)
        if ctx.io and "--io" not in args:
            argv += ["--io", ctx.io]
        super().__init__(name, argv, ctx.tmpdir, env=ctx.relay_env())
        self.ctx = ctx
        self.checked = False

    def wait_ready(self, timeout=10):
        def ready():
            if "ready:" in self.stderr():
                return True
            if not self.alive():
                raise TestFailure(f"{self.name} exited with status {self.popen.returncode} "
                                  f"before ready: {tail(self.stderr())}")
            return False
        wait_until(ready, timeout, f"{self.name} to log 'ready:'")
        return self

    def check_alive(self):
        check(self.alive(), f"{self.name} died (status {self.popen.returncode}): "
                            f"{tail(self.stderr())}")

    def sanitizer_report(self):
        text = self.stderr()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i != -1:
                start = text.rfind("\n", 0, i) + 1
                return text[start:start + 400].replace("\n", " | ")
        return None

    def finish(self, sig=signal.SIGINT, timeout=10):
        """Stop with sig and check a clean exit (status 0, no sanitizer report).
        Returns how long the exit took. SIGINT stops at once; SIGTERM drains,
        which the drain tests ask for."""
        if self.checked:
            return 0.0
        self.checked = True
        was_alive = self.alive()
        start = time.monotonic()
        status = self.stop(sig, timeout)
        elapsed = time.monotonic() - start
        if status is None:
            self.kill()
            raise TestFailure(f"{self.name} did not exit within {timeout}s of "
                              f"{signal.Signals(sig).name}")
        report = self.sanitizer_report() if self.ctx.sanitizer else None
        if report:
            raise TestFailure(f"{self.name} sanitizer report: {report}")
        if not was_alive:
            raise TestFailure(f"{self.name} had died with status {status}: {tail(self.stderr())}")
        check(status == 0, f"{self.name} exited {status} on {signal.Signals(sig).name}: "
                           f"{tail(self.stderr())}")
        return elapsed


    def exited(self, timeout=10):
        """Wait for an exit the relay makes on its own (a drain ending, an
        upgrade handing over) and check it like finish()."""
        self.checked = True
        status = self.wait(timeout)
        if status is None:
            self.kill()
            raise TestFailure(f"{self.name} did not exit within {timeout}s")
        report = self.sanitizer_report() if self.ctx.sanitizer else None
        if report:
            raise TestFailure(f"{self.name} sanitizer report: {report}")
        check(status == 0, f"{self.name} exited {status}: {tail(self.stderr())}")


def start_relay(ctx, args, name="relay", ready_timeout=10, wrapper=()):
    relay = Relay(ctx, args, name, wrapper)
    ctx.on_cleanup(relay.finish)
    return relay.wait_ready(ready_timeout)


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


# Pieces of the nginx and HAProxy configs the tests write: str.format
# templates, {dir} being the daemon's own directory.
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


class Nginx(Proc):
    """nginx terminating TLS behind the relay, on 127.0.0.1:port4 and [::1]:port6."""

    def __init__(self, ctx, cert_dir, proxy_protocol=True, name="nginx"):
        if not shutil.which("nginx"):
            raise TestSkip("nginx is not installed")
        self.dir = os.path.join(ctx.tmpdir, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        crt, key = make_cert(cert_dir)
        self.port4, self.port6 = free_port(), free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, port4=self.port4, port6=self.port6,
                                      crt=crt, key=key,
                                      pp=" proxy_protocol" if proxy_protocol else ""))
        self.access_log = os.path.join(self.dir, "access.log")
        self.unix_path = os.path.join(self.dir, "tls.sock")
        super().__init__(name, ["nginx", "-e", os.path.join(self.dir, "error.log"),
                                   "-p", self.dir, "-c", conf], ctx.tmpdir)
        ctx.on_cleanup(self.shutdown)
        wait_until(lambda: self._ready(), 10, "nginx to listen")

    def _ready(self):
        if not self.alive():
            raise TestFailure(f"nginx exited: {tail(self.stderr())} "
                              f"{tail(read_text(os.path.join(self.dir, 'error.log')))}")
        return (is_listening(self.port4) and is_listening(self.port6) and
                os.path.exists(self.unix_path))

    def access_lines(self):
        return read_text(self.access_log).splitlines()

    def shutdown(self):
        if self.stop(signal.SIGTERM, 10) is None:
            self.kill()


HAPROXY_CONF = HAPROXY_TOP + """\
frontend relayed
    bind 127.0.0.1:{port4} accept-proxy
    bind [::1]:{port6} accept-proxy
    log-format "relayed src=%ci:%cp dst=%fi:%fp bytes=%B authority=%[fc_pp_authority] uid=%[fc_pp_unique_id]"
    default_backend echo
backend echo
    server echo 127.0.0.1:{echo_port}
"""


class HAProxy(Proc):
    """HAProxy in TCP mode with accept-proxy, forwarding to an echo server and
    logging the source it parsed from the PROXY header to stdout."""

    def __init__(self, ctx, echo_port):
        if not shutil.which("haproxy"):
            raise TestSkip("haproxy is not installed")
        self.port4, self.port6 = free_port(), free_port()
        conf = os.path.join(ctx.tmpdir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(HAPROXY_CONF.format(port4=self.port4, port6=self.port6, echo_port=echo_port))
        super().__init__("haproxy", ["haproxy", "-db", "-f", conf], ctx.tmpdir)
        ctx.on_cleanup(self.shutdown)
        wait_until(lambda: self._ready(), 10, "haproxy to listen")

    def _ready(self):
        if not self.alive():
            raise TestFailure(f"haproxy exited: {tail(self.stderr())} {tail(self.stdout())}")
        return is_listening(self.port4) and is_listening(self.port6)

    def log_lines(self):
        return [line for line in self.stdout().splitlines() if line.startswith("relayed ")]

    def shutdown(self):
        if self.stop(signal.SIGTERM, 10) is None:
            self.kill()


class Helper(Proc):
    """A load helper from peers.py run in its own process, so the Python side
    of a heavy test uses a second core. It prints one JSON line when listening
    (if it is a server) and one JSON line with its results at the end."""

    def __init__(self, ctx, name, args, prefix=()):
        peers = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        super().__init__(name, list(prefix) + [sys.executable, peers] + list(args), ctx.tmpdir,
                         env=env)
        ctx.on_cleanup(self.kill)

    def json_lines(self):
        import json
        out = []
        # Only whole lines: the helper may be half way through writing one.
        for line in self.stdout().split("\n")[:-1]:
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def wait_json(self, key, timeout):
        def found():
            for obj in self.json_lines():
                if key in obj:
                    return obj
            if not self.alive():
                raise TestFailure(f"{self.name} exited {self.popen.returncode} without '{key}': "
                                  f"{tail(self.stderr())}")
            return None
        return wait_until(found, timeout, f"{self.name} to report '{key}'", interval=0.02)


def no_uring_tool(ctx):
    """build/tools/no_uring (runs a program with io_uring_setup failing), built
    from tests/tools/no_uring.c into the session dir if make has not."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    built = os.path.join(repo, "build", "tools", "no_uring")
    if os.access(built, os.X_OK):
        return built
    source = os.path.join(repo, "tests", "tools", "no_uring.c")
    target = os.path.join(ctx.session_dir, "no_uring")
    if not os.access(target, os.X_OK) and os.path.exists(source) and shutil.which("cc"):
        subprocess.run(["cc", "-O2", "-o", target, source], check=False, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not os.access(target, os.X_OK):
        raise TestSkip("no build/tools/no_uring and it could not be built")
    return target


def parse_version(text):
    return re.search(r"\d+\.\d+(\.\d+)?", text)


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


class Front(Proc):
    """A real proxy in front of the relay, listening on 127.0.0.1:port and
    forwarding to target "host:port": kind is haproxy (send-proxy-v2),
    nginx-stream (proxy_protocol on: v1) or nginx-http (proxy_pass https,
    which sends no header)."""

    def __init__(self, ctx, kind, target):
        prog = "haproxy" if kind == "haproxy" else "nginx"
        if not shutil.which(prog):
            raise TestSkip(f"{prog} is not installed")
        self.kind = kind
        self.port = free_port()
        self.dir = os.path.join(ctx.tmpdir, f"front-{kind}")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        template = {"haproxy": FRONT_HAPROXY_CONF, "nginx-stream": FRONT_NGINX_STREAM_CONF,
                    "nginx-http": FRONT_NGINX_HTTP_CONF}[kind]
        conf = os.path.join(self.dir, "front.conf")
        with open(conf, "w") as f:
            f.write(template.format(dir=self.dir, port=self.port, target=target))
        if prog == "haproxy":
            argv = ["haproxy", "-db", "-f", conf]
        else:
            argv = ["nginx", "-e", os.path.join(self.dir, "error.log"), "-p", self.dir,
                    "-c", conf]
        super().__init__(f"front-{kind}", argv, ctx.tmpdir)
        ctx.on_cleanup(self.shutdown)
        wait_until(lambda: self._ready(), 10, f"{kind} to listen")

    def _ready(self):
        if not self.alive():
            raise TestFailure(f"{self.kind} exited: {tail(self.stderr())} {tail(self.stdout())} "
                              f"{tail(read_text(os.path.join(self.dir, 'error.log')))}")
        return is_listening(self.port)

    def shutdown(self):
        if self.stop(signal.SIGTERM, 10) is None:
            self.kill()
