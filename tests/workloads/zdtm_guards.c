/* zdtm-style: guard regions (MADV_GUARD_INSTALL) survive a checkpoint.
 * Area A (64 pages) gets guards at pages 3 and 10-11 before READY. On
 * SIGUSR2 (sent after a pre-dump) area B (32 pages, no guard until then)
 * gets one at page 5, A's guard at page 3 is removed and the page written;
 * then it prints GUARDED. After restore (SIGUSR1) every page must read its
 * pattern (page 3 of A its new one) and exactly the guard pages must fault.
 * Prints PASS or FAIL lines; exits 0 only on PASS. Without MADV_GUARD_INSTALL
 * it prints NOGUARDS and exits 2 (the test then says why it checked nothing).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul
#define GUARD_INSTALL 102
#define GUARD_REMOVE 103

static volatile sig_atomic_t got_usr1, got_usr2;
static sigjmp_buf probe_env;

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
static void on_usr2(int sig) { (void)sig; got_usr2 = 1; }
static void on_segv(int sig) { (void)sig; siglongjmp(probe_env, 1); }

static uint64_t pattern(char area, unsigned page) { return ((uint64_t)area << 32) ^ (page * 2654435761u) ^ 0x5bd1e995; }

static void fill(char* base, char area, unsigned pages) {
  for (unsigned p = 0; p < pages; ++p) {
    uint64_t* w = (uint64_t*)(base + p * PAGE);
    for (unsigned i = 0; i < PAGE / 8; i += 64) w[i] = pattern(area, p) + i;
  }
}

/* 1 if reading the page faults, 0 if it reads; *value is its first word. */
static int faults(const char* page, uint64_t* value) {
  if (sigsetjmp(probe_env, 1)) return 1;
  *value = *(const volatile uint64_t*)page;
  return 0;
}

static int check(const char* base, char area, unsigned pages, const int* guard, const char* changed_page) {
  int bad = 0;
  for (unsigned p = 0; p < pages; ++p) {
    uint64_t v = 0;
    int f = faults(base + p * PAGE, &v);
    uint64_t want = base + p * PAGE == changed_page ? 0xC0FFEE : pattern(area, p);
    if (f != guard[p]) {
      printf("FAIL area %c page %u: %s\n", area, p, f ? "faults, not a guard page" : "reads, but was a guard page");
      bad = 1;
    } else if (!f && v != want) {
      printf("FAIL area %c page %u: reads %#llx, wrote %#llx\n", area, p, (unsigned long long)v,
             (unsigned long long)want);
      bad = 1;
    }
  }
  return bad;
}

static void sleep_ms(long ms) {
  struct timespec ts = {0, ms * 1000 * 1000};
  nanosleep(&ts, NULL);
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  sa.sa_handler = on_segv;
  sigaction(SIGSEGV, &sa, NULL);
  /* Different protections keep the two areas apart (no merge). */
  char* a = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char* b = mmap(NULL, 32 * PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED || b == MAP_FAILED) return perror("mmap"), 1;
  fill(a, 'A', 64);
  fill(b, 'B', 32);
  int guard_a[64] = {0}, guard_b[32] = {0};
  if (madvise(a + 3 * PAGE, PAGE, GUARD_INSTALL) != 0) {
    printf("NOGUARDS\n");
    return 2;
  }
  madvise(a + 10 * PAGE, 2 * PAGE, GUARD_INSTALL);
  guard_a[3] = guard_a[10] = guard_a[11] = 1;
  printf("READY\n");
  fflush(stdout);
  while (!got_usr2 && !got_usr1) sleep_ms(5);
  if (got_usr2) {
    madvise(b + 5 * PAGE, PAGE, GUARD_INSTALL);
    guard_b[5] = 1;
    madvise(a + 3 * PAGE, PAGE, GUARD_REMOVE);
    guard_a[3] = 0;
    *(uint64_t*)(a + 3 * PAGE) = 0xC0FFEE;
    printf("GUARDED\n");
    fflush(stdout);
  }
  while (!got_usr1) sleep_ms(5);
  int bad = check(a, 'A', 64, guard_a, got_usr2 ? a + 3 * PAGE : NULL) | check(b, 'B', 32, guard_b, NULL);
  printf(bad ? "FAIL\n" : "PASS\n");
  return bad;
}
