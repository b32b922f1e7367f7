#!/usr/bin/env bash
# restore -j/--shell-job: a process whose stdin was a terminal gets the
# terminal of `wpckpt restore`; when restore's own fd is not a terminal the
# restore is refused before anything runs, instead of silently handing the
# process a file. zdtm_counter (no threads) runs with a pty as stdin.
# Every process started here is killed by pid when the test ends.
source "$(dirname "$0")/../support/e2e_preamble.sh"
WORKLOADS=${WPCKPT_WORKLOAD_DIR:?}

PYTHONPATH="$SUPPORT" python3 - "$W" "$WORKLOADS/zdtm_counter" <<'PY'
import os, signal, subprocess, sys, time

from e2e_support import fail, kill_ours, ours, wait_for, show_on_failure
show_on_failure.append("out.txt")

W, workload = sys.argv[1], sys.argv[2]


try:
    master, slave = os.openpty()
    out = open("out.txt", "w")
    proc = subprocess.Popen([W, "run", "--", workload, "0", "1"], stdin=slave, stdout=out, stderr=out)
    ours.append(proc.pid)
    wait_for(lambda: "READY" in open("out.txt").read(), "zdtm_counter did not start")
    if not os.readlink(f"/proc/{proc.pid}/fd/0").startswith("/dev/pts/"):
        fail("the workload's stdin is not the pty")
    r = subprocess.run([W, "dump", "-t", str(proc.pid), "-D", "img", "-j"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("dump -j: " + r.stderr)
    proc.wait()
    ours.remove(proc.pid)

    # Restore's stdin is /dev/null: refused, with the reason and what to do.
    with open(os.devnull) as null:
        r = subprocess.run([W, "restore", "-D", "img", "-d", "-j"], stdin=null, capture_output=True, text=True)
    if r.returncode != 1:
        fail(f"restore -j without a terminal exited {r.returncode}: {r.stdout} {r.stderr}")
    if "fd 0 of the process was a terminal" not in r.stderr or "hint:" not in r.stderr:
        fail("restore -j without a terminal: unclear error: " + r.stderr)
    if os.path.exists(f"/proc/{proc.pid}"):
        fail("a refused restore left a process at the dumped pid")

    # Restore's stdin is a terminal: the process gets it.
    master2, slave2 = os.openpty()
    r = subprocess.run([W, "restore", "-D", "img", "-d", "-j"], stdin=slave2, capture_output=True, text=True)
    if r.returncode != 0:
        fail("restore -j in a terminal: " + r.stderr)
    pid = int(r.stdout.split()[0])
    ours.append(pid)
    if pid != proc.pid:
        fail(f"restored as {pid}, dumped as {proc.pid}")
    wait_for(lambda: "TracerPid:\t0\n" in open(f"/proc/{pid}/status").read(), "the restore did not finish")
    tty = os.readlink(f"/proc/{pid}/fd/0")
    if tty != os.ttyname(slave2):
        fail(f"the restored process's stdin is {tty}, restore's terminal is {os.ttyname(slave2)}")
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: "PASS" in open("out.txt").read() or "FAIL" in open("out.txt").read(), "no verdict")
    if "PASS" not in open("out.txt").read():
        fail("the restored workload failed its check")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             "the restored workload did not exit")
    ours.remove(pid)
    print("criu_shell_job: ok")
finally:
    kill_ours()
PY
