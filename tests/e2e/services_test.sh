#!/usr/bin/env bash
# Real services checkpointed and restored (issue 15): redis-server holding a
# data set of a few hundred MiB with a client connected before the dump
# (established TCP, --tcp-established), python3 -m http.server, and
# memcached (multi-threaded, thread names, old and new connections). Each is
# pre-dumped, dumped (killed) and restored; afterwards every key is there
# (DEBUG DIGEST equal), the old client keeps using its connection, new
# clients connect, and the web server serves the same bytes on the same port.
# Prints the frozen time and image sizes of the redis case against its RSS.
# Runs in a network namespace of its own (loopback only: the dump's network
# lock goes there). Every process started here is killed by pid when the test ends.
source "$(dirname "$0")/../support/e2e_preamble.sh"
mkdir -p img web mc
need redis-server memcached

PYTHONPATH="$SUPPORT" unshare --net sh -c 'ip link set lo up && exec python3 - "$@"' sh "$W" <<'PY'
import json, os, signal, socket, subprocess, sys, time, urllib.request

from e2e_support import fail, free_port, kill_ours, ours, wait_for, wpckpt

W = sys.argv[1]



class Redis:
    """A RESP client on one connection that stays open across the checkpoint."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=180)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def reply(self):
        l = self.line()
        t, rest = l[:1], l[1:]
        if t in (b"+", b":"):
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v.decode()
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError(f"bad reply {l!r}")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.reply()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def dir_mib(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 2**20


def redis_case():
    port = free_port()
    out = open("redis.log", "w")
    p = subprocess.Popen([W, "run", "--", "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--enable-debug-command", "yes",
                          "--dir", os.getcwd()], stdout=out, stderr=subprocess.STDOUT)
    ours.append(p.pid)
    def up():
        try:
            Redis(port).cmd("PING")
            return True
        except OSError:
            return False
    wait_for(up, "redis-server did not start: " + open("redis.log").read())
    old = Redis(port)
    # A few hundred MiB: 1.5 million keys of 100-byte values.
    old.cmd("DEBUG", "POPULATE", 1500000, "key", 100)
    old.cmd("SET", "before", "the dump")
    size = old.cmd("DBSIZE")
    rss = rss_mib(p.pid)
    wpckpt("pre-dump", "-t", str(p.pid), "-D", "img/1")
    old.cmd("SET", "between", "pre-dumps")
    wpckpt("pre-dump", "-t", str(p.pid), "-D", "img/2", "--prev-images-dir", "../1")
    old.cmd("SET", "last", "write")
    digest = old.cmd("DEBUG", "DIGEST")
    d = wpckpt("dump", "-t", str(p.pid), "-D", "img/3", "--prev-images-dir", "../2", "--tcp-established", "--json")
    dump = json.loads(d.stdout)
    p.wait(timeout=30)
    ours.remove(p.pid)
    r = wpckpt("restore", "-D", "img/3", "-d", "--tcp-established", "--json")
    rpid = json.loads(r.stdout)["pid"]
    ours.append(rpid)
    # The client connected before the dump keeps its connection.
    if old.cmd("GET", "before") != "the dump":
        fail("the old connection lost its data")
    if old.cmd("DEBUG", "DIGEST") != digest:
        fail("the data set differs after the restore")
    if old.cmd("SET", "after", "restore") != "OK":
        fail("the old connection cannot write")
    new = Redis(port)
    if new.cmd("GET", "last") != "write" or new.cmd("DBSIZE") != str(int(size) + 3):
        fail("a new client sees other data")
    if new.cmd("GET", "after") != "restore":
        fail("a new client does not see the old client's write")
    sizes = [dir_mib(f"img/{i}") for i in (1, 2, 3)]
    print(f"redis: RSS {rss:.0f} MiB, {size} keys; images pre-dump 1 {sizes[0]:.1f} MiB, pre-dump 2 "
          f"{sizes[1]:.2f} MiB, dump {sizes[2]:.2f} MiB; dump frozen {dump['frozen_time'] / 1000:.1f} ms "
          f"({dump['pages_written']} pages written)")
    os.kill(rpid, signal.SIGKILL)
    ours.remove(rpid)


def http_case():
    port = free_port()
    os.makedirs("www", exist_ok=True)
    body = os.urandom(300000)
    with open("www/data.bin", "wb") as f:
        f.write(body)
    log = open("http.log", "w")
    p = subprocess.Popen([W, "run", "--", "python3", "-m", "http.server", str(port), "--bind", "127.0.0.1",
                          "--directory", os.path.abspath("www")], stdout=log, stderr=subprocess.STDOUT)
    ours.append(p.pid)
    url = f"http://127.0.0.1:{port}/data.bin"
    def serves():
        try:
            return urllib.request.urlopen(url, timeout=5).read() == body
        except OSError:
            return False
    wait_for(serves, "http.server did not serve: " + open("http.log").read())
    wpckpt("pre-dump", "-t", str(p.pid), "-D", "web/1")
    wpckpt("dump", "-t", str(p.pid), "-D", "web/2", "--prev-images-dir", "../1")
    p.wait(timeout=30)
    ours.remove(p.pid)
    r = wpckpt("restore", "-D", "web/2", "-d", "--json")
    rpid = json.loads(r.stdout)["pid"]
    ours.append(rpid)
    for _ in range(3):
        if urllib.request.urlopen(url, timeout=30).read() != body:
            fail("http.server serves other bytes after the restore")
    print("http.server: same bytes on the same port after the restore")
    os.kill(rpid, signal.SIGKILL)
    ours.remove(rpid)


def memcached_case():
    """Multi-threaded: 4 workers and helper threads, their names kept; a
    connection opened before the dump keeps working."""
    port = free_port()
    log = open("mc.log", "w")
    p = subprocess.Popen([W, "run", "--", "memcached", "-p", str(port), "-l", "127.0.0.1", "-t", "4", "-U", "0",
                          "-u", "root", "-m", "256"], stdout=log, stderr=subprocess.STDOUT)
    ours.append(p.pid)
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return True
        except OSError:
            return False
    wait_for(up, "memcached did not start: " + open("mc.log").read())
    def ask(s, req):
        s.sendall(req)
        out = b""
        while not (out.endswith(b"END\r\n") or out.endswith(b"STORED\r\n")):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out
    old = socket.create_connection(("127.0.0.1", port), timeout=30)
    values = {f"k{i}": os.urandom(40).hex() for i in range(5000)}
    for k, v in values.items():
        ask(old, f"set {k} 0 0 {len(v)}\r\n{v}\r\n".encode())
    names = sorted(open(f"/proc/{p.pid}/task/{t}/comm").read() for t in os.listdir(f"/proc/{p.pid}/task"))
    wpckpt("pre-dump", "-t", str(p.pid), "-D", "mc/1")
    wpckpt("dump", "-t", str(p.pid), "-D", "mc/2", "--prev-images-dir", "../1", "--tcp-established")
    p.wait(timeout=30)
    ours.remove(p.pid)
    r = wpckpt("restore", "-D", "mc/2", "-d", "--tcp-established", "--json")
    rpid = json.loads(r.stdout)["pid"]
    ours.append(rpid)
    after = sorted(open(f"/proc/{rpid}/task/{t}/comm").read() for t in os.listdir(f"/proc/{rpid}/task"))
    if after != names:
        fail(f"thread names changed: {names} -> {after}")
    new = socket.create_connection(("127.0.0.1", port), timeout=30)
    for i, (k, v) in enumerate(values.items()):
        s = old if i % 2 else new
        if ask(s, f"get {k}\r\n".encode()) != f"VALUE {k} 0 {len(v)}\r\n{v}\r\nEND\r\n".encode():
            fail(f"memcached lost {k}")
    print(f"memcached: {len(values)} values and {len(after)} named threads back, old and new connections work")
    os.kill(rpid, signal.SIGKILL)
    ours.remove(rpid)


try:
    redis_case()
    http_case()
    memcached_case()
    print("PASS")
finally:
    kill_ours()
PY
