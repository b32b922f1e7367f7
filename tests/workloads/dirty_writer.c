/* A process that keeps changing its memory, for the tracking tests.
 *
 *   dirty_writer --ready FILE [--mib N] [--threads T] [--pattern random|seq]
 *                [--read-into-heap] [--churn] [--thp] [--fork] [--discard]
 *                [--pause-us U] [--split-areas N]
 *
 * Allocates and fills an N MiB buffer (2 MiB aligned; --thp asks for
 * transparent huge pages), writes "buf ADDR SIZE" to FILE, then runs:
 *  - T writer threads storing counters into pages (random or sequential);
 *  - --read-into-heap: a thread that read(2)s /dev/urandom into heap pages
 *    (kernel-mode writes);
 *  - --churn: a thread that mmaps, grows, moves, shrinks, mprotects and
 *    unmaps areas and moves the program break;
 *  - --discard: the churn thread also MADV_DONTNEEDs / MADV_FREEs buffer pages;
 *  - --fork: a thread that forks children which write their copy and exit,
 *    while the parent keeps writing (copy-on-write); at least 20 ms pass
 *    without a child between two forks;
 *  - --shared: shared anonymous memory and a memfd that the writers (and
 *    fork children) also write, plus a read-only shared mapping of a file;
 *  - --split-areas N: 3N more pages, adjacent, alternately writable,
 *    read-only and inaccessible (3N areas no thread touches), whose address
 *    is written as "split ADDR N".
 * Stop it with SIGSTOP to compare its memory; it never exits on its own.
 * No stdio or malloc after start: other threads move the program break.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul
#define HUGE (2ul << 20)

static char* g_buf;
static size_t g_size;
static int g_seq;
static unsigned g_pause_us = 50;
static int g_discard;
static char* g_shared[2]; /* MAP_SHARED|MAP_ANONYMOUS, memfd */
#define SHARED_SIZE (1ul << 20)

static uint64_t rng_next(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void pause_us(unsigned us) {
  struct timespec ts = {0, (long)us * 1000};
  if (us) nanosleep(&ts, NULL);
}

static void* writer(void* arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
  size_t pages = g_size / PAGE, cursor = (size_t)rng_next(&s) % pages;
  uint64_t counter = 0;
  for (;;) {
    for (int i = 0; i < 256; i++) {
      size_t page = g_seq ? (cursor++ % pages) : (size_t)(rng_next(&s) % pages);
      size_t off = (size_t)(rng_next(&s) % (PAGE / 8)) * 8;
      *(volatile uint64_t*)(g_buf + page * PAGE + off) = ++counter ^ s;
    }
    for (int k = 0; k < 2; k++)
      if (g_shared[k]) *(volatile uint64_t*)(g_shared[k] + (rng_next(&s) % (SHARED_SIZE / 8)) * 8) = counter;
    pause_us(g_pause_us);
  }
  return NULL;
}

static void* reader(void* arg) {
  (void)arg;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  size_t len = 256 * PAGE;
  char* heap = arg ? (char*)arg : NULL;
  uint64_t s = 77;
  if (fd < 0 || !heap) return NULL;
  for (;;) {
    size_t page = (size_t)(rng_next(&s) % 240);
    if (read(fd, heap + page * PAGE + 100, 3 * PAGE) < 0) break;
    (void)len;
    pause_us(g_pause_us * 4);
  }
  return NULL;
}

/* The last churn operations, printed if the process crashes. */
struct op_record {
  unsigned op, slot;
  uintptr_t addr, len, result;
};
static struct op_record g_ops[32];
static unsigned g_op_count;
static void record(unsigned op, unsigned slot, void* addr, size_t len, void* result) {
  struct op_record r = {op, slot, (uintptr_t)addr, len, (uintptr_t)result};
  g_ops[g_op_count++ % 32] = r;
}

struct slot {
  char* addr;
  size_t len;
};

static void fill(char* p, size_t len, uint64_t* s) {
  for (size_t off = 0; off < len; off += PAGE) *(volatile uint64_t*)(p + off + (rng_next(s) % 500) * 8) = rng_next(s);
}

static void* churn(void* arg) {
  (void)arg;
  struct slot slots[8];
  memset(slots, 0, sizeof slots);
  uint64_t s = 4242;
  size_t brk_grown = 0;
  for (;;) {
    unsigned si = (unsigned)(rng_next(&s) % 8);
    struct slot* sl = &slots[si];
    unsigned op = (unsigned)(rng_next(&s) % 8);
    if (!sl->addr) {
      sl->len = (1 + rng_next(&s) % 64) * PAGE;
      void* p = mmap(NULL, sl->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) continue;
      sl->addr = p;
      record(10, si, p, sl->len, p);
      fill(sl->addr, sl->len, &s);
    } else if (op == 0) {
      record(0, si, sl->addr, sl->len, 0);
      munmap(sl->addr, sl->len);
      sl->addr = NULL;
    } else if (op == 1 || op == 2) {  /* grow (in place or moved) */
      size_t len = sl->len + (1 + rng_next(&s) % 32) * PAGE;
      void* p = mremap(sl->addr, sl->len, len, MREMAP_MAYMOVE);
      record(1, si, sl->addr, len, p);
      if (p != MAP_FAILED) {
        sl->addr = p;
        sl->len = len;
        fill(sl->addr, sl->len, &s);
      }
    } else if (op == 3 && sl->len > PAGE) {  /* shrink */
      size_t len = sl->len / 2 / PAGE * PAGE;
      void* p = mremap(sl->addr, sl->len, len, 0);
      record(3, si, sl->addr, len, p);
      if (p != MAP_FAILED) sl->len = len;
    } else if (op == 4) {  /* move to a new place */
      void* dst = mmap(NULL, sl->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (dst != MAP_FAILED) {
        void* p = mremap(sl->addr, sl->len, sl->len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
        record(4, si, sl->addr, sl->len, p);
        /* Since 6.17 a failed move may be partial: the area is then in two
         * places. Forget it rather than guess (a real program would too). */
        if (p != MAP_FAILED) sl->addr = p;
        else sl->addr = NULL;
      }
    } else if (op == 5) {  /* read-only or inaccessible for a while, then writable again */
      int a = mprotect(sl->addr, sl->len, (rng_next(&s) & 1) ? PROT_READ : PROT_NONE);
      pause_us(200);
      int b = mprotect(sl->addr, sl->len, PROT_READ | PROT_WRITE);
      record(5, si, sl->addr, sl->len, (void*)(uintptr_t)(a * 10 + b));
      if (b == 0) fill(sl->addr, sl->len, &s);
      else sl->addr = NULL;
    } else if (op == 6) {  /* program break */
      if (brk_grown < 64 * PAGE || (rng_next(&s) & 1)) {
        char* p = sbrk((intptr_t)(4 * PAGE));
        if (p != (char*)-1) {
          brk_grown += 4 * PAGE;
          fill(p, 4 * PAGE, &s);
        }
      } else if (brk_grown >= 4 * PAGE) {
        if (sbrk(-(intptr_t)(4 * PAGE)) != (void*)-1) brk_grown -= 4 * PAGE;
      }
    } else {
      fill(sl->addr, sl->len, &s);
    }
    if (g_discard) {
      size_t page = (size_t)(rng_next(&s) % (g_size / PAGE - 8));
      madvise(g_buf + page * PAGE, 4 * PAGE, (rng_next(&s) & 1) ? MADV_DONTNEED : MADV_FREE);
      if (rng_next(&s) % 4 == 0) madvise(g_buf + page * PAGE, 4 * PAGE, MADV_PAGEOUT);
    }
    pause_us(g_pause_us * 10);
  }
  return NULL;
}

static void* forker(void* arg) {
  (void)arg;
  uint64_t s = 99;
  for (;;) {
    pid_t pid = fork();
    if (pid == 0) {
      fill(g_buf, g_size / 64, &s); /* the child's own copy */
      for (int k = 0; k < 2; k++) /* but shared memory is the parent's too */
        if (g_shared[k]) fill(g_shared[k], SHARED_SIZE / 2, &s);
      _exit(0);
    }
    if (pid > 0) waitpid(pid, NULL, 0);
    /* A moment without a child between forks, long enough to be seen under
     * load: pre-dump refuses a process while it has a child (it waits for
     * one, lib/dump/unsupported_state.hpp). */
    pause_us(g_pause_us * 200 > 20000 ? g_pause_us * 200 : 20000);
  }
  return NULL;
}

/* A crash is a finding: say where, with the address space, then die. */
static char g_maps[1 << 16];
static void on_segv(int sig, siginfo_t* si, void* uc) {
  (void)uc;
  char line[96];
  int n = snprintf(line, sizeof line, "dirty_writer: signal %d at %p; maps:\n", sig, si->si_addr);
  if (write(2, line, (size_t)n) < 0) _exit(71);
  int fd = open("/proc/self/maps", O_RDONLY);
  ssize_t len = fd >= 0 ? read(fd, g_maps, sizeof g_maps) : 0;
  if (len > 0 && write(2, g_maps, (size_t)len) < 0) _exit(71);
  for (unsigned i = g_op_count > 32 ? g_op_count - 32 : 0; i < g_op_count; i++) {
    struct op_record* r = &g_ops[i % 32];
    n = snprintf(line, sizeof line, "op %u slot %u addr %#lx len %#lx -> %#lx\n", r->op, r->slot,
                 (unsigned long)r->addr, (unsigned long)r->len, (unsigned long)r->result);
    if (write(2, line, (size_t)n) < 0) _exit(71);
  }
  _exit(71);
}

int main(int argc, char** argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  const char* ready = NULL;
  size_t mib = 16;
  int threads = 2, with_reader = 0, with_churn = 0, thp = 0, with_fork = 0, with_shared = 0;
  size_t split_areas = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(a, "--ready")) ready = v, i++;
    else if (!strcmp(a, "--mib")) mib = strtoul(v, NULL, 10), i++;
    else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
    else if (!strcmp(a, "--pattern")) g_seq = !strcmp(v, "seq"), i++;
    else if (!strcmp(a, "--pause-us")) g_pause_us = (unsigned)atoi(v), i++;
    else if (!strcmp(a, "--read-into-heap")) with_reader = 1;
    else if (!strcmp(a, "--churn")) with_churn = 1;
    else if (!strcmp(a, "--thp")) thp = 1;
    else if (!strcmp(a, "--fork")) with_fork = 1;
    else if (!strcmp(a, "--discard")) g_discard = 1;
    else if (!strcmp(a, "--shared")) with_shared = 1;
    else if (!strcmp(a, "--split-areas")) split_areas = strtoul(v, NULL, 10), i++;
    else {
      fprintf(stderr, "dirty_writer: unknown argument %s\n", a);
      return 2;
    }
  }
  g_size = mib << 20;
  char* raw = mmap(NULL, g_size + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return 1;
  g_buf = (char*)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
  if (thp) madvise(g_buf, g_size, MADV_HUGEPAGE);
  uint64_t s = 1;
  for (size_t off = 0; off < g_size; off += 8) *(uint64_t*)(g_buf + off) = rng_next(&s);
  if (with_shared) {
    g_shared[0] = mmap(NULL, SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int mfd = memfd_create("dirty_writer", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, SHARED_SIZE) != 0) return 1;
    g_shared[1] = mmap(NULL, SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    int ro = open(argv[0], O_RDONLY | O_CLOEXEC); /* a read-only shared file: cannot be registered */
    if (g_shared[0] == MAP_FAILED || g_shared[1] == MAP_FAILED || ro < 0 ||
        mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0) == MAP_FAILED)
      return 1;
    uint64_t fs = 5;
    fill(g_shared[0], SHARED_SIZE, &fs);
    fill(g_shared[1], SHARED_SIZE, &fs);
  }
  char* heap = malloc(256 * PAGE + PAGE); /* above the mmap threshold: its own area */
  if (!heap) return 1;
  memset(heap, 0x5a, 256 * PAGE + PAGE);
  char* split = NULL;
  if (split_areas) {
    split = mmap(NULL, 3 * split_areas * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (split == MAP_FAILED) return 1;
    memset(split, 0x3c, 3 * split_areas * PAGE);
    for (size_t i = 0; i < split_areas; i++) {
      if (mprotect(split + (3 * i + 1) * PAGE, PAGE, PROT_READ) != 0) return 1;
      if (mprotect(split + (3 * i + 2) * PAGE, PAGE, PROT_NONE) != 0) return 1;
    }
  }

  if (ready) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready);
    FILE* f = fopen(tmp, "w");
    if (!f) return 1;
    fprintf(f, "buf %#lx %zu\nheap %#lx\n", (unsigned long)(uintptr_t)g_buf, g_size, (unsigned long)(uintptr_t)heap);
    if (split) fprintf(f, "split %#lx %zu\n", (unsigned long)(uintptr_t)split, split_areas);
    fclose(f);
    rename(tmp, ready);
  }
  pthread_t t;
  for (int i = 0; i < threads; i++) pthread_create(&t, NULL, writer, (void*)(uintptr_t)(i + 1));
  if (with_reader) pthread_create(&t, NULL, reader, heap);
  if (with_churn) pthread_create(&t, NULL, churn, NULL);
  if (with_fork) pthread_create(&t, NULL, forker, NULL);
  for (;;) pause();
}
