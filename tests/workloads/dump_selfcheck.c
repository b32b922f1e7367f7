// A workload that checks itself continuously (zdtm style), for the freeze,
// injection and dump tests. Any corruption of its registers, FPU/SSE state,
// memory or an interrupted syscall makes it print "FAIL ..." and exit 3.
//
//   dump_selfcheck [-t THREADS] [-c] [-m MIB] [-s]
//     -t  computing threads (default 2)          -c  keep spawning short-lived threads
//     -m  MiB of memory a thread keeps rewriting  -s  also open a netlink socket (unsupported fd)
//     -f  keep forking short-lived children
//     -u  UID: one extra thread switches to UID alone (raw setresuid: per thread)
//     -k  also hold one fd of each supported kind: eventfd (count 5), epoll
//         (watching it), signalfd (SIGUSR2), timerfd (1 s interval), memfd
//         ("memfd-contents"), a directory, a pipe holding "unread" unread
//
// It prints "READY pid=<pid> usr1=<SIGUSR1 handler> brk=<sbrk(0)>" once set up, then every 50 ms one line
// "TICK <n> <sum of thread counters>" to stdout (line buffered). One thread
// blocks in read(2) on a pipe another thread feeds with sequence numbers;
// the main thread sleeps in nanosleep between ticks: both are interrupted
// syscalls when the process is frozen and must resume transparently.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong counters[64];
static int pipe_fds[2];
static size_t mem_bytes = 1 << 20;

static void fail(const char* what, unsigned long a, unsigned long b) {
  printf("FAIL %s %lu %lu\n", what, a, b);
  fflush(stdout);
  _exit(3);
}

static void on_usr1(int sig) { (void)sig; }

// Integer and floating point state kept in registers across the loop; a
// memory area whose every word must equal f(index, generation).
static void* compute(void* arg) {
  int id = (int)(intptr_t)arg;
  uint64_t* mem = mmap(NULL, mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) fail("mmap", 0, 0);
  size_t words = mem_bytes / 8;
  for (size_t i = 0; i < words; ++i) mem[i] = i * 0x9E3779B97F4A7C15ull;  // generation 0
  uint64_t gen = 0;
  double x = 1.0, y = 0.0;
  for (;;) {
    // A pass: check one generation, write the next.
    for (size_t i = 0; i < words; ++i) {
      uint64_t want = (i * 0x9E3779B97F4A7C15ull) ^ (gen * 0xD1B54A32D192ED03ull);
      if (mem[i] != want) fail("memory", i, gen);
      mem[i] = (i * 0x9E3779B97F4A7C15ull) ^ ((gen + 1) * 0xD1B54A32D192ED03ull);
    }
    ++gen;
    for (int k = 0; k < 1000; ++k) {
      x = x * 1.0000001;
      y += 1.0;
    }
    if (y != (double)gen * 1000.0) fail("fpu", (unsigned long)y, gen);
    atomic_fetch_add(&counters[id], 1);
  }
  return NULL;
}

static void* feeder(void* arg) {
  (void)arg;
  for (uint64_t seq = 0;; ++seq) {
    if (write(pipe_fds[1], &seq, sizeof seq) != sizeof seq) fail("pipe write", errno, seq);
    struct timespec ts = {0, 20 * 1000 * 1000};
    while (nanosleep(&ts, &ts) != 0)
      if (errno != EINTR) fail("nanosleep", errno, 0);
  }
  return NULL;
}

static void* reader(void* arg) {
  (void)arg;
  for (uint64_t want = 0;; ++want) {
    uint64_t got = 0;
    ssize_t n = read(pipe_fds[0], &got, sizeof got);
    if (n != sizeof got) fail("pipe read", n < 0 ? errno : (unsigned long)n, want);
    if (got != want) fail("pipe sequence", got, want);
  }
  return NULL;
}

static void* short_lived(void* arg) {
  atomic_fetch_add(&counters[63], 1);
  return arg;
}

static void open_fd_kinds(void) {
  int efd = eventfd(5, EFD_CLOEXEC);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1234};
  if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != 0) fail("eventfd/epoll", errno, 0);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  if (signalfd(-1, &set, 0) < 0) fail("signalfd", errno, 0);
  int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec its = {{1, 0}, {1, 0}};
  if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) != 0) fail("timerfd", errno, 0);
  int mfd = memfd_create("selfcheck", 0);
  if (mfd < 0 || write(mfd, "memfd-contents", 14) != 14) fail("memfd", errno, 0);
  if (open("/", O_RDONLY | O_DIRECTORY) < 0) fail("dir", errno, 0);
  int p[2];
  if (pipe(p) != 0 || write(p[1], "unread", 6) != 6) fail("pipe", errno, 0);
}

static void* own_uid(void* arg) {
  uid_t uid = (uid_t)(intptr_t)arg;
  if (syscall(SYS_setresuid, uid, uid, uid) != 0) fail("setresuid", errno, 0);
  for (;;) pause();
  return NULL;
}

static void* fork_churn(void* arg) {
  (void)arg;
  for (;;) {
    pid_t child = fork();
    if (child == 0) _exit(0);
    if (child > 0) waitpid(child, NULL, 0);
  }
  return NULL;
}

static void* churn(void* arg) {
  (void)arg;
  for (;;) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, NULL) == 0) pthread_join(t, NULL);
  }
  return NULL;
}

int main(int argc, char** argv) {
  int threads = 2, spawn = 0, sock = 0, forks = 0, kinds = 0, opt;
  long thread_uid = -1;
  while ((opt = getopt(argc, argv, "t:cm:sfku:")) != -1) {
    if (opt == 'u') thread_uid = atol(optarg);
    if (opt == 'k') kinds = 1;
    if (opt == 'f') forks = 1;
    if (opt == 't') threads = atoi(optarg);
    if (opt == 'c') spawn = 1;
    if (opt == 'm') mem_bytes = (size_t)atol(optarg) << 20;
    if (opt == 's') sock = 1;
  }
  if (threads > 60) threads = 60;
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR2);
  sigprocmask(SIG_BLOCK, &blocked, NULL);  // inherited by every thread: mask 0x800
  if (sock && socket(AF_NETLINK, SOCK_RAW, 0) < 0) fail("socket", errno, 0);
  if (pipe(pipe_fds) != 0) fail("pipe", errno, 0);
  if (kinds) open_fd_kinds();
  pthread_t t;
  for (int i = 0; i < threads; ++i) pthread_create(&t, NULL, compute, (void*)(intptr_t)i);
  pthread_create(&t, NULL, feeder, NULL);
  pthread_create(&t, NULL, reader, NULL);
  if (spawn) pthread_create(&t, NULL, churn, NULL);
  if (forks) pthread_create(&t, NULL, fork_churn, NULL);
  if (thread_uid >= 0) pthread_create(&t, NULL, own_uid, (void*)(intptr_t)thread_uid);
  printf("READY pid=%d usr1=%p brk=%p\n", getpid(), (void*)on_usr1, sbrk(0));
  for (unsigned long tick = 0;; ++tick) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    while (nanosleep(&ts, &ts) != 0)
      if (errno != EINTR) fail("nanosleep", errno, 0);
    unsigned long sum = 0;
    for (int i = 0; i < threads; ++i) sum += atomic_load(&counters[i]);
    printf("TICK %lu %lu\n", tick, sum);
  }
}
