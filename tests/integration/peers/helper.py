"""Starting the peers that run in a process of their own (python3 -m
peers NAME, see __main__.py) and reading what they report."""

import json
import os
import sys

from harness import Proc, TestFailure, tail, wait_until

# tests/integration, where the peers package lives.
_HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Helper(Proc):
    """A peer run as `python3 -m peers args...` (prefix in front, for a
    namespace), so the Python side of a heavy test uses a second core. It
    prints one JSON line when listening (if it is a server) and one JSON
    line with its results at the end; killed when the test ends."""

    def __init__(self, ctx, name, args, prefix=()):
        path = os.pathsep.join([_HOME] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=path)
        super().__init__(name, list(prefix) + [sys.executable, "-m", "peers"] + list(args),
                         ctx.tmpdir, env=env)
        ctx.on_cleanup(self.kill)

    def json_lines(self):
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


def start_echo(ctx, name="echo", host="127.0.0.1", port=0):
    """The echo backend (strips the PROXY header, echoes to EOF) in its own
    process, on host (port 0: any); its port is .port, and stopping it
    makes it report "stats"."""
    helper = Helper(ctx, name, ["echo-backend", "--host", host, "--port", str(port)])
    helper.port = helper.wait_json("port", 10)["port"]
    return helper
