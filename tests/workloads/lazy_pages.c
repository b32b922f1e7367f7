/* A process whose memory checks itself, for the lazy restore tests and bench.
 *
 *   lazy_pages --mib N [--threads T] [--sleep] [--bench] [--pause-us U] [--fork] [--fork-gap-us G]
 *
 * Fills an N MiB anonymous buffer: every 8th page stays untouched (zero), the
 * others hold words derived from (page, generation), the generation in the
 * page's first word. Prints "READY buf=0x... size=N" and then:
 *  --sleep: sleeps forever (memory never changes: compare it from outside);
 *  else T threads pick random pages, check the whole page against its
 *  generation (a zero page must be all zero) and rewrite it with the next.
 *  Any mismatch prints "FAIL page P gen G word W" and exits 3: a lazily
 *  restored page that reads zero or stale is caught at once.
 * Every 50 ms the main thread prints "TICK n ops missing p50 p99": pages
 * rewritten so far, accesses that found the page not resident (mincore: a
 * lazy page not yet in), and the latency of those accesses (the fault as the
 * process sees it, upper bound of its power-of-two bucket), in microseconds.
 * --bench: no page is left zero and only the first half of each page holds
 * data (zstd ratio about 2), so that before a restore no access misses;
 * --pause-us: each writer sleeps that long between two pages.
 * --fork: once SIGUSR1 arrives (after the restore: a dump refuses a process
 * with children), every 50 ms a child is forked that checks 2000 random
 * pages of its copy and exits (3 on a mismatch: the parent prints FAIL) and
 * "FORKS n" is printed; writers hold a
 * read lock per page and fork takes it for writing, so no page is forked
 * half-written. The parent waits for each child before the next fork.
 * --fork-gap-us G: G us between two forks instead of 50 ms; 0 forks in a
 * tight loop (a fork always under way: the end of a lazy restore races
 * with one), each child checks 20 pages and "FORKS n" is printed every 100.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul
#define WORDS (PAGE / 8)

static uint64_t* g_buf;
static atomic_uchar* g_busy; /* one per page: two writers never check and rewrite one page at once */
static size_t g_pages;
static atomic_ulong g_ops, g_missing;
static size_t g_data_words = WORDS; /* words 1..g_data_words-1 hold data, the rest stay zero */
static int g_zero_every = 8;        /* every g_zero_every-th page is never written (0: none) */
static unsigned g_pause_us;
static pthread_rwlock_t g_fork_lock;
static long g_fork_gap_us = 50000;
#define BUCKETS 64
static atomic_ulong g_hist[BUCKETS]; /* latency of non-resident accesses, log2(ns) buckets */

static uint64_t word(size_t page, size_t w, uint64_t gen) {
  uint64_t x = (page * 0x9E3779B97F4A7C15ull) ^ (w * 0xBF58476D1CE4E5B9ull) ^ (gen * 0x94D049BB133111EBull);
  x ^= x >> 31;
  return x | 1; /* never zero: a zero word in a written page is always wrong */
}

static void fail(size_t page, uint64_t gen, size_t w) {
  printf("FAIL page %zu gen %llu word %zu\n", page, (unsigned long long)gen, w);
  fflush(stdout);
  _exit(3);
}

static void check(size_t page) {
  uint64_t* p = g_buf + page * WORDS;
  uint64_t gen = p[0];
  for (size_t w = 1; w < WORDS; ++w) {
    uint64_t want = (gen == 0 || w >= g_data_words) ? 0 : word(page, w, gen);
    if (p[w] != want) fail(page, gen, w);
  }
}

static void check_and_bump(size_t page) {
  uint64_t* p = g_buf + page * WORDS;
  uint64_t gen = p[0];
  check(page);
  for (size_t w = 1; w < g_data_words; ++w) p[w] = word(page, w, gen + 1);
  p[0] = gen + 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void* writer(void* arg) {
  uint64_t s = 0x2545F4914F6CDD1Dull ^ (uint64_t)(uintptr_t)arg;
  for (;;) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    size_t page = (size_t)(s % g_pages);
    unsigned char expected = 0;
    if (!atomic_compare_exchange_strong(&g_busy[page], &expected, 1)) continue;
    pthread_rwlock_rdlock(&g_fork_lock);
    unsigned char resident = 1;
    mincore((char*)g_buf + page * PAGE, PAGE, &resident);
    uint64_t t0 = (resident & 1) ? 0 : now_ns();
    check_and_bump(page);
    if (!(resident & 1)) {
      uint64_t ns = now_ns() - t0;
      int b = 0;
      while (b < BUCKETS - 1 && (1ull << (b + 1)) <= ns) ++b;
      atomic_fetch_add(&g_hist[b], 1);
      atomic_fetch_add(&g_missing, 1);
    }
    pthread_rwlock_unlock(&g_fork_lock);
    atomic_store(&g_busy[page], 0);
    atomic_fetch_add(&g_ops, 1);
    if (g_pause_us) usleep(g_pause_us);
  }
  return NULL;
}

static void* forker(void* arg) {
  (void)arg;
  uint64_t s = 0x9E3779B97F4A7C15ull;
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  int sig = 0;
  sigwait(&usr1, &sig);
  const int checks = g_fork_gap_us > 0 ? 2000 : 20;
  const unsigned long print_every = g_fork_gap_us > 0 ? 1 : 100;
  for (unsigned long n = 1;; ++n) {
    if (g_fork_gap_us > 0) {
      struct timespec ts = {g_fork_gap_us / 1000000, (g_fork_gap_us % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
    pthread_rwlock_wrlock(&g_fork_lock);
    pid_t child = fork();
    pthread_rwlock_unlock(&g_fork_lock);
    if (child == 0) {
      for (int i = 0; i < checks; ++i) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        check((size_t)(s % g_pages));
      }
      _exit(0);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child) continue;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      printf("FAIL fork child status %d\n", status);
      fflush(stdout);
      _exit(3);
    }
    if (n % print_every == 0) printf("FORKS %lu\n", n);
  }
  return NULL;
}

/* Upper bound of the bucket holding quantile q, in microseconds. */
static double quantile_us(double q) {
  unsigned long total = 0, seen = 0;
  for (int b = 0; b < BUCKETS; ++b) total += atomic_load(&g_hist[b]);
  if (total == 0) return 0;
  for (int b = 0; b < BUCKETS; ++b) {
    seen += atomic_load(&g_hist[b]);
    if ((double)seen >= q * (double)total) return (double)(1ull << (b + 1)) / 1000.0;
  }
  return 0;
}

int main(int argc, char** argv) {
  size_t mib = 64;
  int threads = 2, sleep_only = 0, forks = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--sleep")) sleep_only = 1;
    else if (!strcmp(argv[i], "--fork")) forks = 1;
    else if (!strcmp(argv[i], "--fork-gap-us") && i + 1 < argc) g_fork_gap_us = atol(argv[++i]);
    else if (!strcmp(argv[i], "--pause-us") && i + 1 < argc) g_pause_us = (unsigned)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--bench")) g_data_words = WORDS / 2, g_zero_every = 0;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  size_t size = mib << 20;
  g_pages = size / PAGE;
  g_buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  g_busy = calloc(g_pages, 1);
  if (g_buf == MAP_FAILED || !g_busy) return 2;
  madvise(g_buf, size, MADV_NOHUGEPAGE); /* 4 KiB pages: a zero page stays a hole */
  for (size_t page = 0; page < g_pages; ++page) {
    if (g_zero_every && page % (size_t)g_zero_every == (size_t)g_zero_every - 1) continue;
    uint64_t* p = g_buf + page * WORDS;
    for (size_t w = 1; w < g_data_words; ++w) p[w] = word(page, w, 1);
    p[0] = 1;
  }
  printf("READY buf=%p size=%zu\n", (void*)g_buf, size);
  if (sleep_only)
    for (;;) pause();
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* the forker waits for it; every thread inherits the mask */
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&g_fork_lock, &attr);
  pthread_t t;
  for (int i = 0; i < threads; ++i) pthread_create(&t, NULL, writer, (void*)(uintptr_t)(i + 1));
  if (forks) pthread_create(&t, NULL, forker, NULL);
  for (unsigned long tick = 0;; ++tick) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    printf("TICK %lu %lu %lu %.1f %.1f\n", tick, atomic_load(&g_ops), atomic_load(&g_missing), quantile_us(0.5),
           quantile_us(0.99));
  }
}
