#!/usr/bin/env bash
# Real programs that hold what a dump cannot save yet are refused, named, and
# left running unharmed (issue 15): sqlite3 with a large temporary table (a
# deleted, open file in SQLITE_TMPDIR over the ghost limit). pre-dump, dump
# and dump -R must each exit non-zero naming the file, leave no image
# directory, and the program must finish with the output of an uninterrupted
# run. (A shell pipeline was refused here until process trees were dumped:
# tests/e2e/process_tree_test.sh restores one now.)
# Every process started here is killed by pid when the test ends.
source "$(dirname "$0")/../support/e2e_preamble.sh"

PYTHONPATH="$SUPPORT" python3 - "$W" <<'PY'
import os, shutil, subprocess, sys

from e2e_support import fail, kill_ours, ours, wait_for

W = sys.argv[1]


def running_untraced(pid):
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            status = f.read()
        if "TracerPid:\t0\n" not in status:
            return f"thread {tid} is traced"
        if "State:\tt" in status or "State:\tT" in status:
            return f"thread {tid} is stopped"
    return None


def refused(pid, verb, images, reasons, extra=()):
    """`verb` on pid must fail naming every reason and leave no image."""
    for json in (False, True):
        args = [W, verb, "-t", str(pid), "-D", images, *extra] + (["--json"] if json else [])
        r = subprocess.run(args, capture_output=True, text=True)
        text = r.stdout if json else r.stderr
        if r.returncode == 0:
            fail(f"{' '.join(args)} succeeded:\n{r.stdout}{r.stderr}")
        for reason in reasons + (["\"ok\": false"] if json else ["wpckpt: error:", "wpckpt: hint:"]):
            if reason not in text:
                fail(f"{' '.join(args)}: no '{reason}' in:\n{text}")
        if os.path.exists(images):
            fail(f"{verb} left {images} behind")
        why = running_untraced(pid)
        if why:
            fail(f"after {verb}: {why}")


def sqlite():
    if not shutil.which("sqlite3"):
        print("SKIP sqlite3: not installed (setup.sh installs it)")
        return
    tmpdir = os.path.abspath("sqlite-tmp")
    os.mkdir(tmpdir)
    out = open("sqlite.out", "w")
    env = dict(os.environ, SQLITE_TMPDIR=tmpdir)
    proc = subprocess.Popen([W, "run", "--", "sqlite3", ":memory:"], stdin=subprocess.PIPE, stdout=out,
                            stderr=subprocess.STDOUT, env=env, text=True)
    ours.append(proc.pid)
    proc.stdin.write("PRAGMA temp_store=FILE;\n"
                     "CREATE TEMP TABLE t AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                     "LIMIT 200000) SELECT x, x % 97 AS g, randomblob(100) AS b FROM c;\n")
    proc.stdin.flush()

    def deleted_fd():
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                link = os.readlink(f"/proc/{proc.pid}/fd/{fd}")
                size = os.stat(f"/proc/{proc.pid}/fd/{fd}").st_size
            except OSError:
                continue
            # Over the default --ghost-limit (1 MiB): a smaller deleted file is saved, not refused.
            if link.startswith(tmpdir + "/") and link.endswith(" (deleted)") and size > 2 << 20:
                return fd, link
        return None

    wait_for(deleted_fd, "sqlite3 did not open a temporary file")
    fd, link = deleted_fd()
    reasons = ["deleted file", f"fd {fd} ({link})"]
    refused(proc.pid, "pre-dump", "sq-pre", reasons)
    refused(proc.pid, "dump", "sq-d", reasons)
    refused(proc.pid, "dump", "sq-d", reasons, ["--leave-running"])
    proc.stdin.write("SELECT count(*), sum(x), count(DISTINCT g) FROM t;\n.quit\n")
    proc.stdin.close()
    if proc.wait(timeout=120) != 0:
        fail(f"sqlite3 exited with {proc.returncode}: {open('sqlite.out').read()}")
    got = open("sqlite.out").read().strip()
    if got != "200000|20000100000|97":
        fail(f"sqlite3 answered {got!r}")
    print("sqlite3: refused three times, the temporary table intact")


try:
    sqlite()
finally:
    kill_ours()
print("PASS")
PY
