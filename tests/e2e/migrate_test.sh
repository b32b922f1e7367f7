#!/usr/bin/env bash
# Live migration between two hosts: the test's own network namespace (the
# source) and a second one (the destination) joined by a veth pair,
# addresses inside them only. `wpckpt migrate` moves a running Python
# computation to `page-server --restore --lazy` on the destination; the
# process finishes there with exactly the output of an uninterrupted run, the
# page server ends with its exit status, nothing is written on the source,
# and migrate reports the downtime. Every process started here is killed by
# pid.
source "$(dirname "$0")/../support/e2e_preamble.sh"
need python3 unshare ip

PYTHONPATH="$SUPPORT" unshare --net --mount sh -c 'exec python3 - "$@"' sh "$W" 2>&1 <<'PY' || exit 1
import json, os, subprocess, sys, time

from e2e_support import COMPUTATION, fail, kill_ours, ours, remove_host, show_on_failure, two_hosts, wpckpt

W = sys.argv[1]

NS, SRC, DST = two_hosts("migrate")
try:
    expected = subprocess.run(["python3", "-c", COMPUTATION], capture_output=True, text=True, check=True).stdout
    wpckpt("page-server", "--new-secret", "--secret-file", "secret")
    log = open("server.log", "w")
    show_on_failure.append("server.log")
    server = subprocess.Popen(["ip", "netns", "exec", NS, W, "page-server", "-D", "dst", "--address", DST, "--port",
                               "0", "--secret-file", "secret", "--restore", "--lazy", "--json"],
                              stdout=subprocess.PIPE, stderr=log, text=True)
    ours.append(server.pid)
    port = json.loads(server.stdout.readline())["port"]

    out = open("out.txt", "w")
    show_on_failure.append("out.txt")
    work = subprocess.Popen(["python3", "-c", COMPUTATION], stdout=out, stderr=subprocess.STDOUT)
    ours.append(work.pid)
    time.sleep(0.5)

    migrate = subprocess.Popen([W, "migrate", "-t", str(work.pid), "--to", f"{DST}:{port}", "--secret-file",
                                "secret", "--max-iterations", "3", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    ours.append(migrate.pid)
    # The dump kills the source process; reaped here at once, its pid is free
    # for the destination, which on this one host is the same pid space.
    work.wait(timeout=120)
    stdout, stderr = migrate.communicate(timeout=120)
    if migrate.returncode != 0:
        fail(f"migrate exited {migrate.returncode}: {stdout} {stderr}")
    lines = [json.loads(line) for line in stdout.splitlines()]
    result = lines[-1]
    iterations = [x for x in lines if x.get("type") == "iteration"]
    if not iterations or result.get("type") != "result" or not result["final_dump"]:
        fail(f"migrate did not pre-dump and dump: {stdout}")
    if result["restored"]["pid"] != work.pid or not result["downtime_ms"] > 0:
        fail(f"migrate did not report the restored process and its downtime: {result}")
    if result["downtime_ms"] < result["final_dump"]["frozen_ms"]:
        fail(f"the downtime is shorter than the final freeze: {result}")
    if os.path.exists("src") or any(n.startswith("migrate-") for n in os.listdir(".")):
        fail("migrate wrote images on the source")
    received = sorted(n for n in os.listdir("dst") if n.startswith("migrate-"))
    if len(received) != len(iterations) + 1 or result["final_image"] not in received:
        fail(f"the destination does not hold every image: {received}")

    # The page server is now the restored process's parent and ends with its status.
    if server.wait(timeout=120) != 0:
        fail(f"the migrated process (or its page server) failed: {server.returncode}")
    got = open("out.txt").read()
    if got != expected:
        fail(f"the migrated process computed {got!r}, an uninterrupted run {expected!r}")
    print(f"ok: migrated after {len(iterations)} pre-dumps, downtime {result['downtime_ms']:.1f} ms "
          f"(final freeze {result['final_dump']['frozen_ms']:.1f} ms, restore {result['restored']['seconds']:.3f} s)")
finally:
    kill_ours()
    remove_host(NS)
PY
