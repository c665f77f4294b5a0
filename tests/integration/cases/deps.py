"""scripts/deps.sh on an operator's host: the services it installs do not
start while it runs (a policy-rc.d that says 101, removed afterwards), and
nothing already running is stopped, whatever its name."""

import os
import shutil
import subprocess

import harness
from harness import check

from .base import case

HERE = os.path.dirname(os.path.abspath(__file__))
DEPS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "scripts", "deps.sh")

# Stand-ins for dpkg-query (every package missing) and apt-get (records
# what a service start would be told, by running the policy as
# invoke-rc.d does).
FAKE_DPKG = "#!/bin/sh\nexit 1\n"
FAKE_APT = """#!/bin/sh
[ "$1" = install ] || exit 0
if [ -x "$DEPS_POLICY_RC_D" ]; then
    "$DEPS_POLICY_RC_D" nginx start; echo "policy $?" >> "$LOG"
else
    echo "no policy" >> "$LOG"
fi
"""


def run_deps(ctx, bindir, policy, log):
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", DEPS_POLICY_RC_D=policy,
               LOG=log)
    return subprocess.run(["sh", DEPS], env=env, capture_output=True, timeout=30, text=True)


@case("deps_keeps_services_from_starting_and_stops_nothing", per_io=False)
def deps_policy(ctx):
    bindir = os.path.join(ctx.tmpdir, "bin")
    os.mkdir(bindir)
    for name, text in (("dpkg-query", FAKE_DPKG), ("apt-get", FAKE_APT)):
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    # A daemon of the operator's, named like one deps.sh installs.
    shutil.copy("/bin/sleep", os.path.join(bindir, "nginx"))
    daemon = subprocess.Popen([os.path.join(bindir, "nginx"), "60"])
    ctx.on_cleanup(lambda: (daemon.kill(), daemon.wait()))
    policy = os.path.join(ctx.tmpdir, "policy-rc.d")
    log = os.path.join(ctx.tmpdir, "apt.log")
    p = run_deps(ctx, bindir, policy, log)
    check(p.returncode == 0, f"deps.sh exited {p.returncode}: {p.stderr!r}")
    with open(log) as f:
        seen = f.read()
    check(seen == "policy 101\n", f"during the install a service start was told {seen!r}, "
                                  "want 101 (not now)")
    check(not os.path.exists(policy), "deps.sh left its policy-rc.d behind")
    check(daemon.poll() is None, "deps.sh stopped a process it did not start")
    # An operator's own policy is neither replaced nor removed.
    with open(policy, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(policy, 0o755)
    os.remove(log)
    p = run_deps(ctx, bindir, policy, log)
    check(p.returncode == 0 and "leaving it as it is" in p.stderr, f"{p.returncode}: {p.stderr!r}")
    with open(policy) as f:
        check(f.read() == "#!/bin/sh\nexit 0\n", "deps.sh changed the operator's policy-rc.d")
    check(daemon.poll() is None, "deps.sh stopped a process it did not start")
    ctx.note("install ran under policy 101; policy removed; the operator's nginx kept running")
