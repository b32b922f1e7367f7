"""What the Python parts of tests/e2e/*_test.sh share: the processes a test
started or restored (killed by pid at the end, whatever happens), failing
with a message, and waiting for a condition."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

ours = []  # pids this test started or restored; kill_ours() stops them
show_on_failure = []  # files whose tail fail() prints (e.g. a workload's output)


def fail(msg):
    print("FAIL:", msg)
    for name in show_on_failure:
        if os.path.exists(name):
            print("---", name, open(name, errors="replace").read()[-2000:])
    sys.exit(1)


def wait_for(pred, what, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    fail(what)


def kill_ours():
    """SIGKILL every pid in `ours`, newest first (children before parents)."""
    for pid in reversed(ours):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wpckpt(*args, timeout=300):
    """Runs the wpckpt under test (ctest's WPCKPT); fails the test when it fails."""
    r = subprocess.run([os.environ["WPCKPT"], *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        fail(f"wpckpt {' '.join(args)} exited {r.returncode}: {r.stdout} {r.stderr}")
    return r


def start_page_server(argv, log_name):
    """Starts `wpckpt page-server ... --json` (argv whole, from its binary on),
    its stderr in log_name; returns (process, port) once it listens."""
    log = open(log_name, "a")
    show_on_failure.append(log_name)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
    ours.append(p.pid)
    first = json.loads(p.stdout.readline() or "{}")
    if first.get("event") != "listening":
        fail(f"page server did not start: {first}")
    return p, first["port"]


def two_hosts(tag):
    """Makes this network namespace (the test's own, from `unshare --net`)
    the source host and a new named one the destination, joined by a veth
    pair; addresses inside them only. Returns (namespace, source address,
    destination address); remove_host(namespace) deletes it."""
    ns = f"wpckpt-{tag}-{os.getpid()}"
    src, dst = "10.231.0.2", "10.231.0.1"

    def sh(*cmd):
        subprocess.run(cmd, check=True)
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", "wpsrc0", "type", "veth", "peer", "name", "wpdst0")
    sh("ip", "link", "set", "wpdst0", "netns", ns)
    sh("ip", "addr", "add", f"{src}/24", "dev", "wpsrc0")
    sh("ip", "link", "set", "wpsrc0", "up")
    for cmd in (["ip", "addr", "add", f"{dst}/24", "dev", "wpdst0"], ["ip", "link", "set", "wpdst0", "up"],
                ["ip", "link", "set", "lo", "up"]):
        sh("ip", "netns", "exec", ns, *cmd)
    return ns, src, dst


def remove_host(ns):
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# A Python computation of a few seconds with a deterministic output.
COMPUTATION = ("import hashlib\n"
               "h = hashlib.sha256(); d = {}\n"
               "for i in range(6_000_000):\n"
               "    d[i % 50021] = d.get(i % 50021, 0) + i\n"
               "    h.update(str(i * i).encode())\n"
               "print(h.hexdigest(), sum(d.values()), len(d))\n")
