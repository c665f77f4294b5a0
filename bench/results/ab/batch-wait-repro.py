# Reproduces the early end of a half-closed client's transfer that batched
# waits exposed before multishot recvs had a total (run as root from the top
# of the tree after make): a client sends GET and half-closes, the backend
# answers 4 MiB. Without the total, one multishot recv took the whole 4 MiB
# while the worker waited in the kernel for a batch, the stash count (8 bits)
# wrapped, and the client got 16-120 KiB. Prints "fails 0" when every
# transfer was whole.
import socket, threading, os, subprocess, time, sys
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(8); bport = ls.getsockname()[1]
rport = 17101
env = dict(os.environ)
relay = subprocess.Popen(["build/release/ringrelay", "--listen", f"127.0.0.1:{rport}", "--backend", f"127.0.0.1:{bport}",
                          "--workers", "1", "--log-level", "debug", "--io", "uring"], stderr=open("relay.err", "w"), env=env)
time.sleep(0.5)
fails = 0
for i in range(20):
    c = socket.create_connection(("127.0.0.1", rport)); c.sendall(b"GET"); c.shutdown(socket.SHUT_WR)
    b, _ = ls.accept()
    got = b""
    while True:
        d = b.recv(65536)
        if not d: break
        got += d
    body = os.urandom(4 << 20)
    t = threading.Thread(target=lambda: (b.sendall(body), b.close())); t.start()
    r = b""
    while True:
        d = c.recv(1 << 20)
        if not d: break
        r += d
    t.join(); c.close()
    if r != body:
        fails += 1; print("iteration", i, "got", len(r)); break
relay.terminate(); relay.wait()
print("fails", fails)
