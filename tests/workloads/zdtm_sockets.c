/* zdtm-style: sockets. TCP listeners on 127.0.0.1 and [::1] (SO_REUSEADDR,
 * TCP_NODELAY, IPV6_V6ONLY), two UDP sockets connected to each other, unix
 * pairs (stream with bytes queued both ways, seqpacket and datagram with
 * messages queued, a stream whose peer closed after writing), a unix
 * listener on DIR/listen.sock and an abstract one. With "tcp": also an
 * established TCP connection to its own listener, with bytes unread on
 * both sides (needs --tcp-established). Prints READY, waits for SIGUSR1
 * (after restore), checks every socket still works and prints PASS.
 * Usage: zdtm_sockets DIR [tcp] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
static int ok = 1;

#define CHECK(cond, what)                       \
  do {                                          \
    if (!(cond)) {                              \
      printf("FAIL %s (line %d)\n", what, __LINE__); \
      ok = 0;                                   \
    }                                           \
  } while (0)

static int tcp_listener(int family, struct sockaddr_storage* addr, socklen_t* len) {
  int s = socket(family, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  memset(addr, 0, sizeof *addr);
  if (family == AF_INET) {
    struct sockaddr_in* in = (struct sockaddr_in*)addr;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof *in;
  } else {
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6* in6 = (struct sockaddr_in6*)addr;
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_loopback;
    *len = sizeof *in6;
  }
  if (bind(s, (struct sockaddr*)addr, *len) != 0 || listen(s, 7) != 0) return -1;
  getsockname(s, (struct sockaddr*)addr, len);
  return s;
}

/* Connects to the listener and accepts: returns 1 if bytes go both ways. */
static int tcp_round_trip(int listener, struct sockaddr_storage* addr, socklen_t len) {
  int c = socket(addr->ss_family, SOCK_STREAM, 0);
  if (connect(c, (struct sockaddr*)addr, len) != 0) return 0;
  int a = accept(listener, NULL, NULL);
  char buf[8] = {0};
  int good = a >= 0 && write(c, "abc", 3) == 3 && read(a, buf, 3) == 3 && !memcmp(buf, "abc", 3) &&
             write(a, "xyz", 3) == 3 && read(c, buf, 3) == 3 && !memcmp(buf, "xyz", 3);
  close(c);
  close(a);
  return good;
}

/* A path ends in its NUL; an abstract name starts with one: both lengths
 * are the name's plus one. */
static int unix_listener(const char* name, int abstract, struct sockaddr_un* un, socklen_t* len) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  strcpy(un->sun_path + (abstract ? 1 : 0), name);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name) + 1);
  if (bind(s, (struct sockaddr*)un, *len) != 0 || listen(s, 5) != 0) return -1;
  return s;
}

static int read_exact(int fd, const char* want) {
  char buf[256] = {0};
  size_t n = strlen(want);
  return read(fd, buf, n) == (ssize_t)n && memcmp(buf, want, n) == 0;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  int with_tcp = argc > 2 && strcmp(argv[2], "tcp") == 0;
  struct sockaddr_storage a4, a6;
  socklen_t l4, l6;
  int t4 = tcp_listener(AF_INET, &a4, &l4), t6 = tcp_listener(AF_INET6, &a6, &l6);
  /* A lingering close and a bound interface: kept by the restore. */
  struct linger lin = {1, 7};
  setsockopt(t4, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
  setsockopt(t4, SOL_SOCKET, SO_BINDTODEVICE, "lo", 2);
  if (t4 < 0 || t6 < 0) return 2;

  int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}, ub = ua;
  socklen_t ul = sizeof ua;
  bind(u1, (struct sockaddr*)&ua, sizeof ua);
  bind(u2, (struct sockaddr*)&ub, sizeof ub);
  getsockname(u1, (struct sockaddr*)&ua, &ul);
  getsockname(u2, (struct sockaddr*)&ub, &ul);
  connect(u1, (struct sockaddr*)&ub, sizeof ub);
  connect(u2, (struct sockaddr*)&ua, sizeof ua);

  int st[2], sq[2], dg[2], gone[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, st);
  socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq);
  socketpair(AF_UNIX, SOCK_DGRAM, 0, dg);
  socketpair(AF_UNIX, SOCK_STREAM, 0, gone);
  if (write(st[1], "to end zero", 11) != 11 || write(st[0], "to end one", 10) != 10) return 2;
  if (write(sq[1], "first", 5) != 5 || write(sq[1], "second message", 14) != 14) return 2;
  if (write(dg[0], "d1", 2) != 2 || write(dg[0], "dgram two", 9) != 9 || write(dg[0], "3", 1) != 1) return 2;
  if (write(gone[1], "bye", 3) != 3) return 2;
  close(gone[1]);

  char path[4096];
  snprintf(path, sizeof path, "%s/listen.sock", argv[1]);
  struct sockaddr_un lp, la;
  socklen_t lpl, lal;
  char abstract[64];
  snprintf(abstract, sizeof abstract, "wpckpt-zdtm-%d", getpid());
  int ul1 = unix_listener(path, 0, &lp, &lpl), ul2 = unix_listener(abstract, 1, &la, &lal);
  if (ul1 < 0 || ul2 < 0) return 2;

  int tc = -1, ts = -1;
  if (with_tcp) {
    tc = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(tc, (struct sockaddr*)&a4, l4) != 0) return 2;
    ts = accept(t4, NULL, NULL);
    if (write(tc, "ping before dump", 16) != 16 || write(ts, "pong", 4) != 4) return 2;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  printf("READY\n");
  fflush(stdout);
  while (!got_usr1) {
    struct timespec t = {0, 10 * 1000 * 1000};
    nanosleep(&t, NULL);
  }

  CHECK(tcp_round_trip(t4, &a4, l4), "tcp v4 listener");
  CHECK(tcp_round_trip(t6, &a6, l6), "tcp v6 listener");
  int one = 0;
  socklen_t ol = sizeof one;
  getsockopt(t6, IPPROTO_IPV6, IPV6_V6ONLY, &one, &ol);
  CHECK(one == 1, "IPV6_V6ONLY kept");
  getsockopt(t4, SOL_SOCKET, SO_REUSEADDR, &one, &ol);
  CHECK(one == 1, "SO_REUSEADDR kept");
  struct linger kept = {0, 0};
  socklen_t kl = sizeof kept;
  getsockopt(t4, SOL_SOCKET, SO_LINGER, &kept, &kl);
  CHECK(kept.l_onoff == 1 && kept.l_linger == 7, "SO_LINGER kept");
  char dev[16] = "";
  socklen_t dl = sizeof dev;
  getsockopt(t4, SOL_SOCKET, SO_BINDTODEVICE, dev, &dl);
  CHECK(strcmp(dev, "lo") == 0, "SO_BINDTODEVICE kept");

  CHECK(write(u1, "udp!", 4) == 4 && read_exact(u2, "udp!"), "udp u1 -> u2");
  CHECK(write(u2, "back", 4) == 4 && read_exact(u1, "back"), "udp u2 -> u1");

  CHECK(read_exact(st[0], "to end zero"), "stream pair queued at end 0");
  CHECK(read_exact(st[1], "to end one"), "stream pair queued at end 1");
  CHECK(write(st[0], "more", 4) == 4 && read_exact(st[1], "more"), "stream pair after restore");
  char m[64] = {0};
  CHECK(read(sq[0], m, sizeof m) == 5 && !memcmp(m, "first", 5), "seqpacket message 1");
  CHECK(read(sq[0], m, sizeof m) == 14 && !memcmp(m, "second message", 14), "seqpacket message 2");
  CHECK(read(dg[1], m, sizeof m) == 2 && !memcmp(m, "d1", 2), "dgram 1");
  CHECK(read(dg[1], m, sizeof m) == 9 && !memcmp(m, "dgram two", 9), "dgram 2");
  CHECK(read(dg[1], m, sizeof m) == 1 && m[0] == '3', "dgram 3");
  CHECK(read_exact(gone[0], "bye") && read(gone[0], m, 1) == 0, "closed peer: data then EOF");

  struct sockaddr_un* names[2] = {&lp, &la};
  socklen_t lens[2] = {lpl, lal};
  int listeners[2] = {ul1, ul2};
  for (int i = 0; i < 2; ++i) {
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    int connected = connect(c, (struct sockaddr*)names[i], lens[i]) == 0;
    CHECK(connected, i ? "connect abstract listener" : "connect path listener");
    int a = connected ? accept(listeners[i], NULL, NULL) : -1;
    CHECK(a >= 0 && write(c, "u", 1) == 1 && read_exact(a, "u"), "unix listener round trip");
    close(c);
    close(a);
  }

  if (with_tcp) {
    CHECK(read_exact(ts, "ping before dump"), "tcp: bytes unread at the dump (server side)");
    CHECK(read_exact(tc, "pong"), "tcp: bytes unread at the dump (client side)");
    CHECK(write(tc, "after", 5) == 5 && read_exact(ts, "after"), "tcp: client -> server after restore");
    CHECK(write(ts, "reply", 5) == 5 && read_exact(tc, "reply"), "tcp: server -> client after restore");
  }
  printf(ok ? "PASS\n" : "FAIL\n");
  fflush(stdout);
  return ok ? 0 : 1;
}
