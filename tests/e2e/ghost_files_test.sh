#!/usr/bin/env bash
# Deleted, open files (issue 15, CRIU's --ghost-limit): sqlite3 building a
# temporary table keeps it in a deleted file in SQLITE_TMPDIR. With a ghost
# limit above its size, pre-dump, pre-dump and dump succeed, the restored
# sqlite3 (reading its commands from wpckpt restore's stdin, as a shell job
# would) finishes the query with the answer of an uninterrupted run. Below
# the limit the dump refuses it by name
# and the process runs on. Every process started here is killed by pid.
source "$(dirname "$0")/../support/e2e_preamble.sh"
mkdir -p img
need sqlite3

PYTHONPATH="$SUPPORT" python3 - "$W" <<'PY'
import json, os, signal, subprocess, sys, time

from e2e_support import fail, kill_ours, ours, wait_for

W = sys.argv[1]


def deleted_fd(pid, tmpdir):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith(tmpdir) and link.endswith(" (deleted)"):
            return int(fd), link
    return None


tmpdir = os.path.abspath("sqlite-tmp")
os.mkdir(tmpdir)
out = open("sqlite.out", "w")
env = dict(os.environ, SQLITE_TMPDIR=tmpdir)
proc = subprocess.Popen([W, "run", "--", "sqlite3", ":memory:"], stdin=subprocess.PIPE, stdout=out,
                        stderr=subprocess.STDOUT, env=env, text=True)
ours.append(proc.pid)
try:
    proc.stdin.write("PRAGMA temp_store=FILE;\n"
                     "CREATE TEMP TABLE t AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                     "LIMIT 200000) SELECT x, x % 97 AS g, randomblob(100) AS b FROM c;\n")
    proc.stdin.flush()
    wait_for(lambda: deleted_fd(proc.pid, tmpdir), "sqlite3 did not open a temporary file")
    fd, link = deleted_fd(proc.pid, tmpdir)
    # Let the table be complete: its size stops growing.
    last = -1
    for _ in range(200):
        size = os.stat(f"/proc/{proc.pid}/fd/{fd}").st_size
        if size == last and size > 0:
            break
        last = size
        time.sleep(0.1)
    small = subprocess.run([W, "dump", "-t", str(proc.pid), "-D", "img/small", "--ghost-limit", "4K"],
                           capture_output=True, text=True)
    if small.returncode == 0 or f"fd {fd} ({link})" not in small.stderr or "--ghost-limit" not in small.stderr:
        fail(f"a deleted file above the limit was not refused by name: {small.stderr}")
    for args in (["pre-dump", "-D", "img/1"], ["pre-dump", "-D", "img/2", "--prev-images-dir", "../1"],
                 ["dump", "-D", "img/3", "--prev-images-dir", "../2"]):
        r = subprocess.run([W, args[0], "-t", str(proc.pid), *args[1:], "--ghost-limit", "256M"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"wpckpt {' '.join(args)}: {r.stderr}")
    proc.wait(timeout=30)
    ours.remove(proc.pid)
    restore = subprocess.Popen([W, "restore", "-D", "img/3"], stdin=subprocess.PIPE, text=True)
    ours.append(restore.pid)
    restore.stdin.write("SELECT count(*), sum(x), count(DISTINCT g) FROM t;\n.quit\n")
    restore.stdin.close()
    if restore.wait(timeout=120) != 0:
        fail(f"the restored sqlite3 exited {restore.returncode}: {open('sqlite.out').read()}")
    got = open("sqlite.out").read().strip()
    if got != "200000|20000100000|97":
        fail(f"the restored sqlite3 answered {got!r}")
    print(f"sqlite3: temporary table of {last} bytes saved and restored, same answer")
    print("PASS")
finally:
    kill_ours()
PY
