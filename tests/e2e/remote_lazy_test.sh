#!/usr/bin/env bash
# Post-copy over the network: the images stay on the source host (the test's
# own network namespace), where `page-server --lazy` serves them; the
# destination (a second namespace, joined by a veth pair, addresses inside
# them only) restores with `restore --lazy --page-server`, so the process
# runs before its memory is there and its pages come over the network.
#  - a Python computation restored so finishes with exactly the output of an
#    uninterrupted run, lazily and eagerly (restore --page-server alone);
#  - lazy_pages, whose threads check every page they touch, runs on the
#    destination with no wrong or zero page; the server exits once the
#    restore there has every page;
#  - the server killed while pages are still coming (the link slowed with
#    tc): the restored process is killed, never left reading zeros, and
#    restore fails saying why;
#  - a restore with another secret is refused and nothing runs.
# Every process started here is killed by pid.
source "$(dirname "$0")/../support/e2e_preamble.sh"
need python3 unshare ip tc

PYTHONPATH="$SUPPORT" unshare --net --mount sh -c 'exec python3 - "$@"' sh "$W" "${WPCKPT_WORKLOAD_DIR:?}" 2>&1 <<'PY' || exit 1
import json, os, signal, subprocess, sys, time

from e2e_support import (COMPUTATION, fail, kill_ours, ours, remove_host, show_on_failure, start_page_server, two_hosts,
                          wait_for, wpckpt)

W, WORKLOADS = sys.argv[1], sys.argv[2]


def start_server():
    """page-server --lazy on the source host, serving imgs/."""
    return start_page_server([W, "page-server", "-D", "imgs", "--lazy", "--address", SRC, "--port", "0",
                              "--secret-file", "secret", "--json"], "server.err")


def restore_there(port, image, *extra, secret="secret"):
    """wpckpt restore on the destination host, reading `image` from the server."""
    err = open("restore.err", "w")
    show_on_failure.append("restore.err")
    return subprocess.Popen(["ip", "netns", "exec", NS, W, "restore", "--page-server", "--address", SRC, "--port",
                             str(port), "--secret-file", secret, "-D", image, "--json", *extra],
                            stdout=subprocess.PIPE, stderr=err, text=True)


def read_json_doc(stream):
    """The restore's --json document (several lines) from its stdout."""
    text = ""
    for line in stream:
        text += line
        try:
            return json.loads(text)
        except ValueError:
            continue
    fail(f"no JSON document from restore: {text!r}")


def checkpoint(argv, out_name, names, settle):
    """Starts argv (stdout to out_name), pre-dumps and dumps it into imgs/<names>."""
    out = open(out_name, "w")
    show_on_failure.append(out_name)
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    ours.append(p.pid)
    settle(p)
    wpckpt("pre-dump", "-t", str(p.pid), "-D", f"imgs/{names[0]}")
    wpckpt("dump", "-t", str(p.pid), "-D", f"imgs/{names[1]}", "--prev-images-dir", f"../{names[0]}")
    p.wait(timeout=30)
    return p.pid


def not_running(pid):
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


NS, SRC, DST = two_hosts("rlazy")
try:
    wpckpt("page-server", "--new-secret", "--secret-file", "secret")
    wpckpt("page-server", "--new-secret", "--secret-file", "other-secret")
    os.mkdir("imgs", 0o700)

    # 1. A real program, lazily and eagerly: byte-identical output.
    expected = subprocess.run(["python3", "-c", COMPUTATION], capture_output=True, text=True, check=True).stdout
    py = checkpoint(["python3", "-c", COMPUTATION], "py.txt", ("p1", "p2"), lambda p: time.sleep(0.4))
    for mode in (["--lazy"], []):
        open("py.txt", "w").close()
        server, port = start_server()
        r = restore_there(port, "p2", *mode)
        doc = read_json_doc(r.stdout)
        if r.wait(timeout=120) != 0:
            fail(f"restore {mode} from the page server failed")
        if open("py.txt").read() != expected:
            fail(f"restore {mode}: output differs: {open('py.txt').read()!r} != {expected!r}")
        if mode and not doc["lazy"]["complete"]:
            fail(f"the lazy restore did not complete: {doc['lazy']}")
        events = [json.loads(line) for line in server.stdout]
        if server.wait(timeout=30) != 0 or not any(e.get("event") == "served" and e.get("complete") for e in events):
            fail(f"the server did not serve the restore to its end and exit: {events}")
    # The restore's private copy of the chain's files (/tmp/wpckpt-remote-*/p2) is gone.
    left = [d for d in os.listdir("/tmp") if d.startswith("wpckpt-remote-") and os.path.exists(f"/tmp/{d}/p2")]
    if left or os.path.exists("p2"):
        fail(f"the restore left a copy of the chain's files behind: {left}")

    # 2. A process checking every page it touches while its memory arrives.
    lp = checkpoint([f"{WORKLOADS}/lazy_pages", "--mib", "192", "--threads", "2"], "lp.txt", ("l1", "l2"),
                    lambda p: (wait_for(lambda: "READY" in open("lp.txt").read(), "lazy_pages did not start"),
                               time.sleep(0.3)))
    open("lp.txt", "w").close()
    server, port = start_server()
    r = restore_there(port, "l2", "--lazy")
    doc = read_json_doc(r.stdout)  # printed once every page is in
    lazy = doc["lazy"]
    if not lazy["complete"] or lazy["faults_served"] + lazy["pages_prefetched"] == 0:
        fail(f"lazy restore over the network: {lazy}")
    wait_for(lambda: open("lp.txt").read().count("TICK") >= 5, "the restored lazy_pages does not run")
    if "FAIL" in open("lp.txt").read():
        fail("the restored process read a wrong page")
    if server.wait(timeout=30) != 0:
        fail("the server did not exit after the restore had every page")
    os.kill(lp, signal.SIGKILL)
    r.wait(timeout=30)

    # 3. The server dies while pages are still coming: the process must die too.
    subprocess.run(["tc", "qdisc", "add", "dev", "wpsrc0", "root", "tbf", "rate", "160mbit", "burst", "64kb",
                    "latency", "400ms"], check=True)
    open("lp.txt", "w").close()
    server, port = start_server()
    r = restore_there(port, "l2", "--lazy")
    serving = 0
    for line in server.stdout:
        serving += json.loads(line).get("event") == "serving"
        if serving == 2:  # the pager's own connection: the process runs
            break
    wait_for(lambda: "TICK" in open("lp.txt").read(), "the restored lazy_pages did not start running")
    server.kill()
    server.wait()
    said = r.stdout.read()  # with --json, the error is a JSON document
    if r.wait(timeout=120) == 0:
        fail("restore succeeded although its page server died before every page was in")
    err = open("restore.err").read() + said
    if "before all memory was in" not in err or "killed so that it never runs on missing memory" not in err:
        fail(f"restore did not say why the process was killed: {err}")
    wait_for(lambda: not_running(lp), "the restored process still runs without its memory", 10)
    if "FAIL" in open("lp.txt").read():
        fail("the restored process read a zero or wrong page before it was killed")
    subprocess.run(["tc", "qdisc", "del", "dev", "wpsrc0", "root"], check=True)

    # 4. Another secret: refused before anything runs.
    server, port = start_server()
    r = restore_there(port, "l2", "--lazy", secret="other-secret")
    said = r.stdout.read() + open("restore.err").read()
    if r.wait(timeout=60) == 0 or "same --secret-file" not in said:
        fail(f"a restore with another secret was not refused clearly: {said}")
    if not not_running(lp):
        fail("a refused restore left a process running")
    server.kill()
    print("ok: post-copy over the network, lazy and eager; a dead server kills the process; another secret is refused")
finally:
    kill_ours()
    remove_host(NS)
PY
