#!/usr/bin/env bash
# inotify (issue 15 item 4, lib/fds/inotify_fd.cpp): `tail -f` (it waits on
# an inotify watch of its file) is pre-dumped, dumped and restored, and a
# line appended after the restore appears in its output: without the watch
# it would wait forever. A python3 program (ctypes) watches a directory and
# two files, having removed an earlier watch (so the watch descriptors have
# a gap); after the restore it reads the events of new writes with the same
# descriptors as an uninterrupted run. Every process started here is killed
# by pid when the test ends.
source "$(dirname "$0")/../support/e2e_preamble.sh"

PYTHONPATH="$SUPPORT" python3 - "$W" <<'PY'
import json, os, subprocess, sys, time

from e2e_support import fail, kill_ours, ours, wait_for, wpckpt

W = sys.argv[1]
D = os.getcwd()
WATCHER = r'''
import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
fd = libc.inotify_init1(0)
IN_MODIFY, IN_CREATE = 0x2, 0x100
gone = libc.inotify_add_watch(fd, f"{d}/w/a".encode(), IN_MODIFY)
libc.inotify_rm_watch(fd, gone)
os.read(fd, 4096)  # the IN_IGNORED of the removed watch
wb = libc.inotify_add_watch(fd, f"{d}/w/b".encode(), IN_MODIFY)
wc = libc.inotify_add_watch(fd, f"{d}/w/c".encode(), IN_MODIFY)
wdir = libc.inotify_add_watch(fd, f"{d}/w".encode(), IN_CREATE)
print("READY", wb, wc, wdir, flush=True)
while not os.path.exists(f"{d}/go"):
    time.sleep(0.01)
for name in ("b", "c"):
    with open(f"{d}/w/{name}", "a") as f:
        f.write("more")
open(f"{d}/w/new", "w").close()
seen = []
while len(seen) < 3:
    buf = os.read(fd, 4096)
    i = 0
    while i < len(buf):
        wd, mask, cookie, length = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + length].rstrip(b"\0").decode()
        seen.append((wd, hex(mask), name))
        i += 16 + length
print("EVENTS", sorted(set(seen)), flush=True)
'''



def checkpoint_and_restore(proc, tag):
    wpckpt("pre-dump", "-t", str(proc.pid), "-D", f"img-{tag}/1")
    wpckpt("dump", "-t", str(proc.pid), "-D", f"img-{tag}/2", "--prev-images-dir", "../1")
    proc.wait(timeout=30)  # killed by the dump: reaped, so that its pid is free
    ours.remove(proc.pid)
    r = wpckpt("restore", "-D", f"img-{tag}/2", "-d", "--json")
    restored = json.loads(r.stdout)["pid"]
    ours.append(restored)
    return restored


try:
    # tail -f: a real program waiting on its watch.
    with open("log.txt", "w") as f:
        f.write("first line\n")
    out = open("tail.out", "w")
    tail = subprocess.Popen([W, "run", "--", "tail", "-f", "log.txt"], stdout=out, stderr=subprocess.STDOUT)
    ours.append(tail.pid)
    wait_for(lambda: "first line" in open("tail.out").read(), "tail -f printed nothing")
    if not any(os.readlink(f"/proc/{tail.pid}/fd/{n}") == "anon_inode:inotify" for n in os.listdir(f"/proc/{tail.pid}/fd")):
        fail("tail -f holds no inotify descriptor here (the test would prove nothing)")
    os.makedirs("img-tail", exist_ok=True)
    checkpoint_and_restore(tail, "tail")
    with open("log.txt", "a") as f:
        f.write("after the restore\n")
    wait_for(lambda: "after the restore" in open("tail.out").read(),
             f"the restored tail -f did not see the appended line: {open('tail.out').read()!r}", seconds=20)

    # Several watches with a gap in their descriptors.
    def run_watcher(tag, checkpointed):
        os.makedirs(f"{tag}/w")
        for name in "abc":
            open(f"{tag}/w/{name}", "w").close()
        out = open(f"{tag}.out", "w")
        argv = ["python3", "-c", WATCHER, os.path.abspath(tag)]
        p = subprocess.Popen([W, "run", "--", *argv] if checkpointed else argv, stdout=out, stderr=subprocess.STDOUT)
        ours.append(p.pid)
        wait_for(lambda: "READY" in open(f"{tag}.out").read(), f"the watcher did not start: {open(f'{tag}.out').read()}")
        if checkpointed:
            os.makedirs(f"img-{tag}", exist_ok=True)
            checkpoint_and_restore(p, tag)
        open(f"{tag}/go", "w").close()
        wait_for(lambda: "EVENTS" in open(f"{tag}.out").read(), f"no events: {open(f'{tag}.out').read()!r}", seconds=20)
        return open(f"{tag}.out").read()

    expected = run_watcher("plain", False)
    got = run_watcher("restored", True)
    if got != expected:
        fail(f"the restored watcher saw {got!r}, an uninterrupted one {expected!r}")
    print("inotify: tail -f and a watcher with a gap in its watch descriptors restored")
finally:
    kill_ours()
PY
