/* For `wpckpt snapshot`: rewrites every page of a buffer as fast as it can,
 * pass after pass, each page filled with a pattern of (pass, page). At any
 * instant the pages before `pos` hold pass `seq` and the rest pass seq - 1:
 * an image that mixes two instants breaks that. On SIGUSR1 (sent after a
 * restore) it checks the whole buffer against seq and pos, prints PASS or
 * FAIL with the first bad page, and exits.
 * Usage: snapshot_writer [MIB] */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
static volatile sig_atomic_t check;
static uint64_t seq, pos, npages;
static uint64_t* buf;

static void on_usr1(int sig) {
  (void)sig;
  check = 1;
}

static uint64_t word(uint64_t pass, uint64_t page, uint64_t i) { return (pass * 0x9E3779B97F4A7C15ull) ^ (page << 20) ^ i; }

static void fill(uint64_t page, uint64_t pass) {
  uint64_t* p = buf + page * (PAGE / 8);
  for (uint64_t i = 0; i < PAGE / 8; i++) p[i] = word(pass, page, i);
}

static int verify(void) {
  for (uint64_t page = 0; page < npages; page++) {
    uint64_t want = page < pos ? seq : seq - 1;
    const uint64_t* p = buf + page * (PAGE / 8);
    for (uint64_t i = 0; i < PAGE / 8; i++) {
      if (p[i] != word(want, page, i)) {
        printf("FAIL page %llu word %llu: not pass %llu (seq %llu, pos %llu)\n", (unsigned long long)page,
               (unsigned long long)i, (unsigned long long)want, (unsigned long long)seq, (unsigned long long)pos);
        return 1;
      }
    }
  }
  printf("PASS seq=%llu pos=%llu\n", (unsigned long long)seq, (unsigned long long)pos);
  return 0;
}

int main(int argc, char** argv) {
  npages = (uint64_t)(argc > 1 ? atoi(argv[1]) : 64) << 20 >> 12;
  buf = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return 2;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  for (pos = 0; pos < npages; pos++) fill(pos, 0);
  seq = 1;
  pos = 0;
  /* Where a test reads an image of this process without running it. */
  printf("READY %d buf=%p npages=%llu seq=%p pos=%p\n", getpid(), (void*)buf, (unsigned long long)npages,
         (void*)&seq, (void*)&pos);
  fflush(stdout);
  for (;;) {
    for (pos = 0; pos < npages; pos++) {
      if (check) {
        int r = verify();
        fflush(stdout);
        return r;
      }
      fill(pos, seq);
    }
    seq++;
  }
}
