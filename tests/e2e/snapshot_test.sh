#!/usr/bin/env bash
# wpckpt snapshot against a workload that rewrites 128 MiB as fast as it can
# (tests/workloads/snapshot_writer.c): the snapshot alone restores to one
# consistent instant although every page was rewritten many times while it
# was copied; the process ran on meanwhile, its next pre-dump is a delta of
# the snapshot, and that chain's dump restores consistent too. --json says
# how long the process was frozen and how long the copy took. A delta snapshot
# read frozen (--mechanism read-frozen, no fork) is one instant too, and so
# is `dump -R` as a delta of it (the process runs on; its memory is read from
# a copy-on-write copy); the chain goes on from it. Every process started
# here is killed by pid.
source "$(dirname "$0")/../support/e2e_preamble.sh"
WRITER=${WPCKPT_WORKLOAD_DIR:?}/snapshot_writer

PYTHONPATH="$SUPPORT" python3 - "$W" "$WRITER" <<'PY'
import json, os, signal, struct, subprocess, sys, time

from e2e_support import fail, kill_ours, ours, show_on_failure, wait_for, wpckpt

W, WRITER = sys.argv[1], sys.argv[2]
show_on_failure.append("out.txt")


def start():
    out = open("out.txt", "w")
    p = subprocess.Popen([WRITER, "128"], stdout=out, stderr=subprocess.STDOUT)
    ours.append(p.pid)
    wait_for(lambda: "READY" in open("out.txt").read(), "the writer did not start")
    return p, open("out.txt").read().strip()


K = 0x9E3779B97F4A7C15
K_INV = pow(K, -1, 1 << 64)


def image_is_one_instant(image, ready):
    """Reads the buffer, seq and pos out of the image (wpckpt cat): pages
    before pos whole of pass seq, those after it whole of pass seq - 1 (page
    pos itself was being filled)."""
    f = dict(kv.split("=") for kv in ready.split()[2:])
    npages = int(f["npages"])
    cat = lambda addr, n: subprocess.run([W, "cat", "-D", image, "--addr", addr, "--len", str(n)],
                                         capture_output=True, check=True).stdout
    seq = struct.unpack("<Q", cat(f["seq"], 8))[0]
    pos = struct.unpack("<Q", cat(f["pos"], 8))[0]
    data = cat(f["buf"], npages * 4096)
    for page in range(npages):
        if page == pos:
            continue  # the page being filled at that instant: part old, part new
        first, last = struct.unpack_from("<Q", data, page * 4096)[0], struct.unpack_from("<Q", data, page * 4096 + 4088)[0]
        got = ((first ^ (page << 20)) * K_INV) % (1 << 64)
        want = seq if page < pos else seq - 1
        if got != want or last != ((want * K) % (1 << 64)) ^ (page << 20) ^ 511:
            fail(f"{image} mixes instants: page {page} holds pass {got}, seq {seq} pos {pos} want {want}")
    return seq, pos


def restored_passes(image, pid):
    open("out.txt", "w").close()
    wpckpt("restore", "-D", image, "-d")
    time.sleep(0.2)
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: "PASS" in open("out.txt").read() or "FAIL" in open("out.txt").read(),
             f"the process restored from {image} did not check itself")
    text = open("out.txt").read()
    if "PASS" not in text:
        fail(f"{image} is not one instant: {text.strip()}")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             f"the process restored from {image} did not exit")


try:
    p, ready = start()
    time.sleep(0.5)
    doc = json.loads(wpckpt("snapshot", "-t", str(p.pid), "-D", "snap", "--json").stdout)
    s = doc["snapshot"]
    if not doc["left_running"] or p.poll() is not None:
        fail("the process did not run on after its snapshot")
    if s["mechanism"] != "fork-cow" or not s["copy_done_seconds"] > 0 or not doc["frozen_time"] > 0:
        fail(f"snapshot figures missing: {doc}")
    seq, pos = image_is_one_instant("snap", ready)
    if seq < 2:
        fail(f"the writer had not rewritten its buffer before the snapshot (pass {seq})")
    # The copy was reaped: the process has no child left.
    children = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
    if children:
        fail(f"the snapshot left children of the process: {children}")

    # A delta snapshot without a fork: every page to store read while frozen.
    doc2 = json.loads(wpckpt("snapshot", "-t", str(p.pid), "-D", "snap2", "--prev-images-dir", "../snap",
                             "--mechanism", "read-frozen", "--json").stdout)
    if doc2["snapshot"]["mechanism"] != "read-frozen" or not doc2["incremental"] or p.poll() is not None:
        fail(f"the read-frozen delta snapshot: {doc2}")
    if doc2["snapshot"]["pages_read_frozen"] == 0:
        fail(f"the read-frozen snapshot read nothing while frozen: {doc2}")
    seq2, pos2 = image_is_one_instant("snap2", ready)
    if (seq2, pos2) <= (seq, pos):
        fail(f"the second snapshot is not a later instant: {(seq2, pos2)} after {(seq, pos)}")

    # dump -R: the writer rewrote all 128 MiB since, too much to read frozen:
    # a copy-on-write copy, one instant too, and the process runs on.
    rdoc = json.loads(wpckpt("dump", "-t", str(p.pid), "-D", "dumpR", "-R", "--prev-images-dir", "../snap2",
                             "--json").stdout)
    if rdoc.get("snapshot", {}).get("mechanism") != "fork-cow" or not rdoc["left_running"] or p.poll() is not None:
        fail(f"dump -R did not read the memory from a copy-on-write copy while the process ran on: {rdoc}")
    if not rdoc["incremental"]:
        fail(f"dump -R after the snapshots was not a delta: {rdoc.get('whole_reason')}")
    image_is_one_instant("dumpR", ready)

    pre = json.loads(wpckpt("pre-dump", "-t", str(p.pid), "-D", "pre", "--prev-images-dir", "../dumpR",
                            "--json").stdout)
    if not pre["incremental"]:
        fail(f"the pre-dump after snapshot and dump -R was not a delta: {pre.get('whole_reason')}")
    wpckpt("dump", "-t", str(p.pid), "-D", "final", "--prev-images-dir", "../pre")
    p.wait(timeout=30)

    restored_passes("final", p.pid)
    restored_passes("dumpR", p.pid)
    restored_passes("snap", p.pid)
    restored_passes("snap2", p.pid)
    print(f"ok: snapshot (pass {seq}, page {pos}) frozen {doc['frozen_time'] / 1e3:.1f} ms, copied in {s['copy_done_seconds']:.3f} s "
          f"while the process ran; one instant after restore, and the chain after it too")
finally:
    kill_ours()
PY
