#!/usr/bin/env bash
# Process trees (issue 15 item 2), with real programs: each is started under
# `wpckpt run`, pre-dumped twice while it works (a chain per process),
# dumped (the whole tree frozen and killed), restored, and must finish with
# exactly the output of an uninterrupted run.
#   pipeline   sh -c 'seq | sort -r | gzip -9 > out.gz': four processes, pipes
#              between them, the shell waiting for its children
#   pipeline -R  the same pipeline (sort -S: no temporary files) dumped once with dump -R (each process's
#              memory read from a copy-on-write copy while the tree runs on),
#              then killed a moment later and restored from that image
#   make -j2   make with its jobserver pipe, sh and gcc (cc1, as) compiling a
#              generated C project, then the program it built runs
#   pool       python3 multiprocessing.Pool(2): pipes, a semaphore in deleted
#              /dev/shm memory shared by three processes, the pool's threads
#   sysv       tests/workloads/sysv_tree: a parent and a child sharing a SysV
#              segment by key, which comes back with its id (reused: it
#              outlived the dump) and is still found by its key
# Every process of every tree is killed by pid when the test ends.
source "$(dirname "$0")/../support/e2e_preamble.sh"
need gcc make python3 gzip

PYTHONPATH="$SUPPORT" python3 - "$W" <<'PY'
import gzip, json, os, subprocess, sys, time

from e2e_support import fail, kill_ours, ours, show_on_failure, wait_for

W = sys.argv[1]


# Runs about 5 s untraced (gzip -9; -1 took 0.8 s and sometimes ended before
# the dump froze it): the tree must still be there when it is dumped.
# sort spills to $TMPDIR: the test's own directory, so a killed sort's files
# go with it.
PIPELINE = ["sh", "-c", "seq 1 3000000 | TMPDIR=. sort -r | gzip -9 > out.gz"]
# For dump -R: sort keeps everything in memory (-S). With its default buffer
# it spills to /tmp/sortXXXX files and deletes them once merged; the original
# runs on after dump -R and may delete them before it is killed, and then no
# restore can reopen them (the image names files, it does not copy them).
PIPELINE_IN_MEMORY = ["sh", "-c", "seq 1 3000000 | sort -S 512M -r | gzip -9 > out.gz"]


def descendants(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for c in f.read().split():
                    out += [int(c)] + descendants(int(c))
    except OSError:
        pass
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def wpckpt_json(*args):
    r = subprocess.run([W, *args, "--json"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        fail(f"wpckpt {' '.join(args)} exited {r.returncode}: {r.stdout} {r.stderr}")
    return json.loads(r.stdout)


def checkpoint_and_restore(name, argv, working, cwd):
    """Runs argv under wpckpt run until working(pids) says the tree is busy,
    pre-dumps twice, dumps, restores in the foreground; returns the restore's
    exit status (the root's) and the number of processes dumped."""
    log = os.path.join(cwd, f"{name}.log")
    show_on_failure.append(log)
    with open(log, "w") as out:
        proc = subprocess.Popen([W, "run", "--", *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd)
    ours.append(proc.pid)
    wait_for(lambda: working(descendants(proc.pid)), f"{name} did not start working", 120)
    ours.extend(descendants(proc.pid))
    parent = None
    for i in range(2):
        images = os.path.join(cwd, f"pre{i}")
        args = ["pre-dump", "-t", str(proc.pid), "-D", images] + (["--prev-images-dir", parent] if parent else [])
        doc = wpckpt_json(*args)
        ours.extend(p["pid"] for p in doc.get("processes", []))
        parent = images
        time.sleep(0.3)
    dump = os.path.join(cwd, "dump")
    doc = wpckpt_json("dump", "-t", str(proc.pid), "-D", dump, "--prev-images-dir", parent)
    members = doc.get("processes", [])
    ours.extend(p["pid"] for p in members)
    if not isinstance(doc.get("pages_prefetched"), int):
        fail(f"{name}: the tree's dump reports no pages_prefetched: {doc}")
    if len(members) < 2 or not os.path.exists(os.path.join(dump, "tree.json")):
        fail(f"{name}: the dump is not a tree's image: {doc}")
    if proc.wait(timeout=60) != -9:
        fail(f"{name}: the dumped root ended with {proc.returncode}, not killed by the dump")
    verify = wpckpt_json("verify", "-D", dump)
    if len(verify.get("processes", [])) != sum(1 for p in members if not p["zombie"]):
        fail(f"{name}: verify did not check every process: {verify}")
    r = subprocess.run([W, "restore", "-D", dump], capture_output=True, text=True, timeout=600)
    return r, len(members)


def expect_result(name, restore, path, want):
    """The restore ended well and the restored program wrote what an uninterrupted one did."""
    if restore.returncode != 0:
        fail(f"{name}: restore exited {restore.returncode}: {restore.stderr}")
    got = open(path).read()
    if got != want:
        fail(f"{name}: the restored run computes {got!r}, an uninterrupted one {want!r}")


def pipeline(cwd):
    want = subprocess.run(["sh", "-c", "seq 1 3000000 | sort -r"], capture_output=True).stdout
    r, n = checkpoint_and_restore("pipeline", PIPELINE,
                                  lambda pids: any(comm(p) == "gzip" for p in pids) and len(pids) >= 3, cwd)
    if r.returncode != 0:
        fail(f"pipeline: restore exited {r.returncode}: {r.stderr}")
    with open(os.path.join(cwd, "out.gz"), "rb") as f:
        if gzip.decompress(f.read()) != want:
            fail("pipeline: the restored pipeline's output differs from an uninterrupted run")
    print(f"pipeline: {n} processes dumped and restored; output identical to an uninterrupted run")


def pipeline_leave_running(cwd):
    want = subprocess.run(["sh", "-c", "seq 1 3000000 | sort -r"], capture_output=True).stdout
    log = os.path.join(cwd, "pipeline-R.log")
    show_on_failure.append(log)
    with open(log, "w") as out:
        proc = subprocess.Popen([W, "run", "--", *PIPELINE_IN_MEMORY],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd)
    ours.append(proc.pid)
    wait_for(lambda: any(comm(p) == "gzip" for p in descendants(proc.pid)), "the pipeline did not start", 120)
    ours.extend(descendants(proc.pid))
    dump = os.path.join(cwd, "dump")
    doc = wpckpt_json("dump", "-t", str(proc.pid), "-D", dump, "-R")
    members = [p["pid"] for p in doc.get("processes", [])]
    ours.extend(members)
    if len(members) < 2 or doc.get("snapshot", {}).get("mechanism") not in ("fork-cow", "read-frozen"):
        fail(f"pipeline -R: not a tree's image read through copies: {doc}")
    time.sleep(0.3)  # it runs on, and writes on, after the instant
    for pid in reversed(members):
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    proc.wait(timeout=60)
    r = subprocess.run([W, "restore", "-D", dump], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        fail(f"pipeline -R: restore exited {r.returncode}: {r.stderr}")
    with open(os.path.join(cwd, "out.gz"), "rb") as f:
        if gzip.decompress(f.read()) != want:
            fail("pipeline -R: the restored pipeline's output differs from an uninterrupted run")
    print(f"pipeline -R: {len(members)} processes, frozen {doc['frozen_time'] / 1000:.1f} ms "
          f"({doc['snapshot']['mechanism']}); restored from that instant, output identical")


def make(cwd):
    src = os.path.join(cwd, "src")
    os.mkdir(src)
    units = 6
    for u in range(units):
        with open(os.path.join(src, f"u{u}.c"), "w") as f:
            for k in range(1500):
                f.write(f"unsigned long f{u}_{k}(unsigned long x) {{ return (x * {k + 3}u) ^ (x >> {k % 13 + 1}); }}\n")
            f.write(f"unsigned long unit{u}(unsigned long x) {{\n")
            for k in range(1500):
                f.write(f"  x = f{u}_{k}(x);\n")
            f.write("  return x;\n}\n")
    with open(os.path.join(src, "main.c"), "w") as f:
        f.write("#include <stdio.h>\n")
        for u in range(units):
            f.write(f"unsigned long unit{u}(unsigned long);\n")
        f.write("int main(void) { unsigned long x = 1;\n")
        for u in range(units):
            f.write(f"  x = unit{u}(x);\n")
        f.write('  printf("%lu\\n", x); return 0; }\n')
    objs = " ".join(f"u{u}.o" for u in range(units))
    with open(os.path.join(src, "Makefile"), "w") as f:
        f.write(f"result.txt: prog\n\t./prog > result.txt\nprog: main.o {objs}\n\tgcc -o prog main.o {objs}\n"
                "%.o: %.c\n\tgcc -O2 -c $< -o $@\n")
    ref = os.path.join(cwd, "ref")
    subprocess.run(["cp", "-r", src, ref], check=True)
    subprocess.run(["make", "-s", "-j2", "-C", ref], check=True, capture_output=True)
    want = open(os.path.join(ref, "result.txt")).read()
    r, n = checkpoint_and_restore("make", ["make", "-s", "-j2", "-C", src],
                                  lambda pids: sum(comm(p) == "cc1" for p in pids) >= 1, cwd)
    expect_result("make", r, os.path.join(src, "result.txt"), want)
    print(f"make -j2: {n} processes dumped and restored; the program it built computes the same")


POOL = """
import hashlib, multiprocessing, sys
def work(i):
    h = hashlib.sha256()
    for k in range(60000):
        h.update(f"{i}:{k}".encode())
    return h.hexdigest()
if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        out = pool.map(work, range(400), chunksize=4)
    open(sys.argv[1], "w").write(hashlib.sha256("".join(out).encode()).hexdigest() + "\\n")
"""


def pool(cwd):
    script = os.path.join(cwd, "pool.py")
    open(script, "w").write(POOL)
    subprocess.run(["python3", script, os.path.join(cwd, "ref.txt")], check=True, timeout=300)
    want = open(os.path.join(cwd, "ref.txt")).read()
    r, n = checkpoint_and_restore("pool", ["python3", script, os.path.join(cwd, "got.txt")],
                                  lambda pids: len(pids) >= 2, cwd)
    expect_result("pool", r, os.path.join(cwd, "got.txt"), want)
    print(f"multiprocessing.Pool(2): {n} processes dumped and restored; the same result")


def sysv(cwd):
    prog = os.path.join(os.environ["WPCKPT_WORKLOAD_DIR"], "sysv_tree")
    key = str(0x57500000 + os.getpid() % 65536)
    try:
        r, n = checkpoint_and_restore("sysv", [prog, key, "300"], lambda pids: len(pids) >= 1, cwd)
    finally:
        subprocess.run(["ipcrm", "-M", key], capture_output=True)  # gone already when all went well
    out = open(os.path.join(cwd, "sysv.log")).read()
    if r.returncode != 0 or "RESULT 300 0 same-segment" not in out:
        fail(f"sysv: restore exited {r.returncode} ({r.stderr}); the workload said: {out}")
    print(f"SysV segment shared by key: {n} processes dumped and restored; counter, checksum and segment intact")


try:
    for case in (pipeline, pipeline_leave_running, make, pool, sysv):
        d = os.path.abspath(case.__name__)
        os.mkdir(d)
        case(d)
finally:
    kill_ours()
PY
