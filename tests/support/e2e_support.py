"""What the Python parts of tests/e2e/*_test.sh share: the processes a test
started or restored (killed by pid at the end, whatever happens), failing
with a message, and waiting for a condition."""
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
