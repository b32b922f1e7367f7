#!/usr/bin/env bash
# Images over the network between two hosts: the test's own network
# namespace (the source) and a second one (the destination) joined by a veth
# pair, addresses inside them only. A page server on the destination
# receives two pre-dumps and the dump of a running Python computation, sent
# with --page-server; nothing is written on the source; the received chain
# verifies, and restored it finishes with exactly the output of an
# uninterrupted run. A client with another secret is refused and the
# workload runs on untouched. Every process started here is killed by pid.
source "$(dirname "$0")/../support/e2e_preamble.sh"
need python3 unshare ip

PYTHONPATH="$SUPPORT" unshare --net --mount sh -c 'exec python3 - "$@"' sh "$W" 2>&1 <<'PY' || exit 1
import json, os, subprocess, sys, time

from e2e_support import (COMPUTATION, fail, kill_ours, ours, remove_host, show_on_failure, start_page_server, two_hosts,
                          wpckpt)

W = sys.argv[1]
PROGRAM = COMPUTATION


def start_server():
    return start_page_server(["ip", "netns", "exec", NS, W, "page-server", "-D", "dst", "--address", DST, "--port",
                              "0", "--secret-file", "secret", "--json"], "server.log")


def send(verb, pid, image, port, *extra, secret="secret"):
    return subprocess.run([W, verb, "-t", str(pid), "-D", f"src/{image}", "--page-server", "--address", DST,
                           "--port", str(port), "--secret-file", secret, *extra], capture_output=True, text=True)


NS, SRC, DST = two_hosts("pagesrv")
try:
    expected = subprocess.run(["python3", "-c", PROGRAM], capture_output=True, text=True, check=True).stdout
    wpckpt("page-server", "--new-secret", "--secret-file", "secret")
    wpckpt("page-server", "--new-secret", "--secret-file", "other-secret")
    server, port = start_server()

    out = open("out.txt", "w")
    show_on_failure.append("out.txt")
    work = subprocess.Popen(["python3", "-c", PROGRAM], stdout=out, stderr=subprocess.STDOUT)
    ours.append(work.pid)
    time.sleep(0.3)

    r = send("pre-dump", work.pid, "1", port, secret="other-secret")
    if r.returncode == 0 or "same --secret-file" not in r.stderr:
        fail(f"a client with another secret was not refused clearly: {r.returncode} {r.stderr}")
    refused = json.loads(server.stdout.readline())
    if refused.get("event") != "refused" or "authenticate" not in refused.get("error", ""):
        fail(f"the server did not report the refused client: {refused}")
    if work.poll() is not None:
        fail("the workload did not survive the refused pre-dump")

    for verb, image, extra in (("pre-dump", "1", []), ("pre-dump", "2", ["--prev-images-dir", "../1"]),
                               ("dump", "3", ["--prev-images-dir", "../2"])):
        r = send(verb, work.pid, image, port, *extra)
        if r.returncode != 0:
            fail(f"{verb} {image} over the network: {r.stdout} {r.stderr}")
        got = json.loads(server.stdout.readline())
        if got.get("event") != "image" or not got["dir"].endswith(f"/dst/{image}"):
            fail(f"the server did not receive {image}: {got}")
        if image == "2" and "delta against ../1" not in r.stdout:
            fail(f"the second pre-dump was not a delta of the first on the server: {r.stdout}")
        time.sleep(0.2)
    work.wait(timeout=30)
    if os.path.exists("src"):
        fail("--page-server wrote something locally")
    if server.wait(timeout=30) != 0:
        fail("the page server did not exit after the dump")

    wpckpt("verify", "-D", "dst/3")
    manifest = json.load(open("dst/3/manifest.json"))
    if manifest["parent"]["path"] != "../2":
        fail(f"the received dump is not linked to its parent: {manifest['parent']}")
    restore = subprocess.Popen([W, "restore", "-D", "dst/3"])  # the same pid as `work`, in `ours`
    if restore.wait(timeout=120) != 0:
        fail("restore of the received chain failed")
    got = open("out.txt").read()
    if got != expected:
        fail(f"restored output differs: {got!r} != {expected!r}")
    print("ok: a chain sent over the network restores; another secret is refused")
finally:
    kill_ours()
    remove_host(NS)
PY
