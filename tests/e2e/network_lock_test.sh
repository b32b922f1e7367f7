#!/usr/bin/env bash
# The network lock (CRIU's --network-lock, lib/netlock): redis-server with a
# client connected is dumped with --tcp-established, and the client sends a
# command while no process owns the connection. With the lock (the default)
# the packets are dropped, the client's kernel retransmits, and after the
# restore the command is answered on the same connection; the lock's
# nftables table exists exactly between dump and restore. With
# --network-lock skip the host answers the same packet with a reset.
# Runs in a network namespace of its own (loopback only); every process
# started here is killed by pid when the test ends.
source "$(dirname "$0")/../support/e2e_preamble.sh"
need redis-server nft unshare ip

PYTHONPATH="$SUPPORT" unshare --net sh -c 'ip link set lo up && exec python3 - "$@"' sh "$W" <<'PY'
import json, os, socket, subprocess, sys, time

from e2e_support import fail, free_port, kill_ours, ours, wait_for, wpckpt

W = sys.argv[1]



def lock_table_exists(pid):
    return subprocess.run(["nft", "list", "table", "inet", f"wpckpt_lock_{pid}"],
                          capture_output=True).returncode == 0


def start_redis(name):
    port = free_port()
    log = open(f"{name}.log", "w")
    p = subprocess.Popen([W, "run", "--", "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", os.getcwd()],
                         stdout=log, stderr=subprocess.STDOUT)
    ours.append(p.pid)
    client = None

    def up():
        nonlocal client
        try:
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            return True
        except OSError:
            return False
    wait_for(up, f"redis-server did not start: {open(f'{name}.log').read()}")
    return p, client


def ask(client, command):
    client.sendall(command)
    return client.recv(100)


def dump_then_send(name, extra):
    p, client = start_redis(name)
    if ask(client, b"INCR counter\r\n") != b":1\r\n":
        fail("redis did not count")
    wpckpt("dump", "-t", str(p.pid), "-D", f"img-{name}", "--tcp-established", *extra)
    p.wait(timeout=30)
    # The process is gone; the client does not know it and writes on.
    client.sendall(b"INCR counter\r\n")
    time.sleep(0.5)  # several retransmissions, or the reset, happen here
    return p.pid, client


# With the lock: no reset; the command is answered after the restore.
pid, client = dump_then_send("locked", [])
if not lock_table_exists(pid):
    fail("the dump left no network lock for the connection")
client.settimeout(0.2)
try:
    early = client.recv(100)
    fail(f"the client got {early!r} while the connection was locked")
except socket.timeout:
    pass
except ConnectionResetError:
    fail("the peer was reset although the connection was locked")
r = wpckpt("restore", "-D", "img-locked", "-d", "--tcp-established", "--json")
ours.append(json.loads(r.stdout)["pid"])
client.settimeout(60)
try:
    reply = client.recv(100)
except OSError as e:
    fail(f"the command sent during the lock was not answered after the restore: {e}")
if reply != b":2\r\n":
    fail(f"the command sent during the lock got {reply!r}, not :2")
if ask(client, b"INCR counter\r\n") != b":3\r\n":
    fail("the connection does not work on after the restore")
if lock_table_exists(pid):
    fail("the restore left the network lock in place")

# Without it: the same packet meets no socket and is answered with a reset.
pid2, client2 = dump_then_send("unlocked", ["--network-lock", "skip"])
if lock_table_exists(pid2):
    fail("--network-lock skip still locked the connection")
client2.settimeout(10)
try:
    got = client2.recv(100)
    reset = got == b""
except ConnectionResetError:
    reset = True
if not reset:
    fail(f"without the lock the client got {got!r} instead of a reset (the test proves nothing)")
bad = subprocess.run([W, "dump", "-t", "1", "-D", "img-bad", "--network-lock", "iptables"], capture_output=True,
                     text=True)
if bad.returncode == 0 or "nftables" not in bad.stderr:
    fail(f"--network-lock iptables was not refused with a hint: {bad.stderr}")
kill_ours()
print("network lock: locked connection answered after restore; unlocked one reset")
PY
