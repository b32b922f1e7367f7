/* Writes a known number of distinct pages per second, for `watch` and
 * `iterate` tests.
 *
 *   rate_writer --ready FILE [--mib N] [--rate PAGES_PER_S] [--halve-every S]
 *
 * Fills an N MiB buffer (before writing FILE: "buf ADDR SIZE"), then every
 * 10 ms writes the next pages of the buffer in order, so that the process
 * writes PAGES_PER_S distinct pages per second until it wraps around the
 * buffer (N MiB / rate seconds). --halve-every S halves the rate every S
 * seconds (down to zero): a dirty rate that falls over time.
 * No stdio or malloc after start; it never exits on its own.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096ul
#define TICK_NS 10000000l

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  const char* ready = NULL;
  size_t mib = 64;
  double rate = 1000, halve_every = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(a, "--ready")) ready = v, i++;
    else if (!strcmp(a, "--mib")) mib = strtoul(v, NULL, 10), i++;
    else if (!strcmp(a, "--rate")) rate = atof(v), i++;
    else if (!strcmp(a, "--halve-every")) halve_every = atof(v), i++;
    else {
      fprintf(stderr, "rate_writer: unknown argument %s\n", a);
      return 2;
    }
  }
  size_t size = mib << 20, pages = size / PAGE;
  char* buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED || pages == 0) return 1;
  madvise(buf, size, MADV_NOHUGEPAGE); /* one fault per 4 KiB page once armed */
  if (madvise(buf, size, 23 /* MADV_POPULATE_WRITE */) != 0) memset(buf, 1, size);
  if (ready) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready);
    FILE* f = fopen(tmp, "w");
    if (!f) return 1;
    fprintf(f, "buf %#lx %zu\n", (unsigned long)(uintptr_t)buf, size);
    fclose(f);
    rename(tmp, ready);
  }
  double start = now_s(), owed = 0;
  size_t cursor = 0;
  uint64_t counter = 0;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (;;) {
    next.tv_nsec += TICK_NS;
    if (next.tv_nsec >= 1000000000l) next.tv_nsec -= 1000000000l, next.tv_sec++;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    double r = rate;
    if (halve_every > 0) {
      int halvings = (int)((now_s() - start) / halve_every);
      r = halvings >= 30 ? 0 : rate / (double)(1u << halvings);
    }
    owed += r * (double)TICK_NS / 1e9;
    while (owed >= 1) {
      *(volatile uint64_t*)(buf + cursor * PAGE + (counter % 500) * 8) = ++counter;
      cursor = (cursor + 1) % pages;
      owed -= 1;
    }
  }
}
