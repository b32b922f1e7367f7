#!/usr/bin/env bash
# File locks (CRIU's --file-locks, lib/fds/file_locks.hpp): a python3
# program holds an exclusive flock, a POSIX write lock on bytes 10-19, an
# OFD write lock on a whole file and a shared flock. Without --file-locks
# the dump refuses, naming them, and the program runs on. With it, pre-dump
# + dump + restore: every lock is held again by the restored process
# (checked from outside: conflicting requests fail, compatible ones pass,
# and the program itself sees its flock), and it finishes its work with the
# output of an uninterrupted run. A restore while another process holds one
# of the locks fails, says why, and leaves nothing running; once the lock is
# released the same image restores. Every process started here is killed by
# pid when the test ends.
source "$(dirname "$0")/../support/e2e_preamble.sh"

PYTHONPATH="$SUPPORT" python3 - "$W" <<'PY'
import fcntl, json, os, struct, subprocess, sys, time

from e2e_support import fail, kill_ours, ours, wait_for

W = sys.argv[1]
D = os.getcwd()
WORKLOAD = r'''
import fcntl, hashlib, os, struct, sys, time
d = sys.argv[1]
a = open(f"{d}/a", "w"); fcntl.flock(a, fcntl.LOCK_EX)
b = open(f"{d}/b", "r+"); fcntl.lockf(b, fcntl.LOCK_EX, 10, 10)
c = os.open(f"{d}/c", os.O_RDWR)
fcntl.fcntl(c, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
s = open(f"{d}/d"); fcntl.flock(s, fcntl.LOCK_SH)
print("READY", flush=True)
h = hashlib.sha256()
for i in range(3000):
    h.update(str(i).encode())
while not os.path.exists(f"{d}/go"):
    time.sleep(0.01)
other = open(f"{d}/a")
try:
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("flock lost")
except BlockingIOError:
    print("flock held")
print("DONE", h.hexdigest(), flush=True)
'''
os.mkdir("img")
for name in "abcd":
    with open(name, "w") as f:
        f.write("x" * 100)


def start(tag):
    out = open(f"{tag}.out", "w")
    p = subprocess.Popen([W, "run", "--", "python3", "-c", WORKLOAD, D], stdout=out, stderr=subprocess.STDOUT)
    ours.append(p.pid)
    wait_for(lambda: "READY" in open(f"{tag}.out").read(), f"the workload did not start: {open(f'{tag}.out').read()}")
    return p


def blocked(fn):
    try:
        fn()
        return False
    except (BlockingIOError, PermissionError):
        return True


def locks_held():
    """True when every lock of the workload is held by someone else than us (and only those)."""
    a, b, d = open("a"), open("b", "r+"), open("d")
    c = os.open("c", os.O_RDWR)
    try:
        ok = blocked(lambda: fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB))
        ok = ok and blocked(lambda: fcntl.lockf(b, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 10))
        ok = ok and not blocked(lambda: fcntl.lockf(b, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0))  # bytes 0-9 are free
        ok = ok and blocked(lambda: fcntl.fcntl(c, fcntl.F_OFD_SETLK,
                                                struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0)))
        ok = ok and not blocked(lambda: fcntl.flock(d, fcntl.LOCK_SH | fcntl.LOCK_NB))
        ok = ok and blocked(lambda: fcntl.flock(open("d"), fcntl.LOCK_EX | fcntl.LOCK_NB))
        return ok
    finally:
        os.close(c)
        for f in (a, b, d):
            f.close()


try:
    # The uninterrupted run.
    plain = start("plain")
    if not locks_held():
        fail("the workload's locks are not seen from outside (the test checks nothing)")
    open("go", "w").close()
    plain.wait(timeout=60)
    os.unlink("go")
    expected = open("plain.out").read()
    if "flock held" not in expected:
        fail(f"the uninterrupted run: {expected}")

    p = start("got")
    r = subprocess.run([W, "dump", "-t", str(p.pid), "-D", "img/refused"], capture_output=True, text=True)
    if r.returncode == 0 or "--file-locks" not in r.stderr or "FLOCK" not in r.stderr:
        fail(f"a dump without --file-locks was not refused naming the locks: {r.stderr}")
    if p.poll() is not None or not locks_held():
        fail("the refused dump harmed the process or its locks")
    for args in (["pre-dump", "-D", "img/1"], ["dump", "-D", "img/2", "--prev-images-dir", "../1"]):
        r = subprocess.run([W, args[0], "-t", str(p.pid), *args[1:], "--file-locks"], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{args[0]} --file-locks failed: {r.stderr}")
    p.wait(timeout=30)
    ours.remove(p.pid)

    # Someone else takes one of the locks meanwhile: the restore refuses.
    thief = open("b", "r+")
    fcntl.lockf(thief, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 10)
    r = subprocess.run([W, "restore", "-D", "img/2", "-d", "--json"], capture_output=True, text=True)
    if r.returncode == 0 or "conflicting lock" not in r.stdout + r.stderr:
        fail(f"a restore against a lock held elsewhere did not fail with the reason: {r.stdout} {r.stderr}")
    time.sleep(0.2)
    if os.path.exists(f"/proc/{p.pid}") and open(f"/proc/{p.pid}/stat").read().split()[2] != "Z":
        ours.append(p.pid)
        fail("the failed restore left a process running")
    thief.close()

    r = subprocess.run([W, "restore", "-D", "img/2", "-d", "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"restore failed: {r.stdout} {r.stderr}")
    pid = json.loads(r.stdout)["pid"]
    ours.append(pid)
    if not locks_held():
        fail("the restored process does not hold the locks the dumped one held")
    posix_owner = [l for l in open("/proc/locks") if " POSIX " in l and f" {pid} " in l]
    if not posix_owner:
        fail(f"/proc/locks names no POSIX lock of the restored pid {pid}")
    open("go", "w").close()
    wait_for(lambda: "DONE" in open("got.out").read(), f"the restored workload did not finish: {open('got.out').read()}")
    if open("got.out").read() != expected:
        fail(f"output differs: {open('got.out').read()!r} vs {expected!r}")
    print("file locks: refused without --file-locks, restored with it, conflicting restore refused")
finally:
    kill_ours()
PY
