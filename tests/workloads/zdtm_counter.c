/* zdtm-style: threads count under a mutex and wake the main thread through a
 * condition variable; a heap buffer holds a known pattern. Prints READY, runs
 * until SIGUSR1 (sent after restore), then checks that the threads still
 * count and keep their names ("worker-N"), joins them, checks the counters
 * and the pattern, prints PASS/FAIL.
 * Usage: zdtm_counter [THREADS] [HEAP_MIB] [thp] */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ticked = PTHREAD_COND_INITIALIZER;
static uint64_t counters[64], total;
static volatile sig_atomic_t got_usr1;
static volatile int stop;

/* Only a flag: pthread_cond_broadcast here deadlocked when the signal landed
 * on a worker inside its own broadcast (kill() may pick any thread; after a
 * restore it sometimes did). The workers block SIGUSR1 and main waits with a
 * timeout, so the flag is seen whatever happens to the condvar. */
static void on_usr1(int sig) {
  (void)sig;
  got_usr1 = 1;
}

static void wait_tick(void) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_nsec += 10 * 1000 * 1000;
  if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
  pthread_cond_timedwait(&ticked, &lock, &until);
}

static void* worker(void* arg) {
  int i = (int)(intptr_t)arg;
  while (!stop) {
    pthread_mutex_lock(&lock);
    counters[i]++;
    total++;
    pthread_cond_broadcast(&ticked);
    pthread_mutex_unlock(&lock);
    if ((counters[i] & 1023) == 0) usleep(100);
  }
  return NULL;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  size_t heap = (size_t)(argc > 2 ? atoi(argv[2]) : 16) << 20;
  if (threads < 0 || threads > 64) return 2;
  uint64_t* buf;
  if (argc > 3 && strcmp(argv[3], "thp") == 0) {
    /* 2 MiB aligned and MADV_HUGEPAGE: the restore must re-apply the advice. */
    char* raw = mmap(NULL, heap + (2 << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    buf = (uint64_t*)(((uintptr_t)raw + (2 << 20) - 1) & ~(uintptr_t)((2 << 20) - 1));
    madvise(buf, heap, MADV_HUGEPAGE);
  } else {
    buf = malloc(heap);
  }
  for (size_t i = 0; i < heap / 8; i++) buf[i] = i * 2654435761u;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  pthread_t tids[64];
  sigset_t usr1, was;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, &was); /* inherited by the workers */
  for (int i = 0; i < threads; i++) {
    char name[16];
    pthread_create(&tids[i], NULL, worker, (void*)(intptr_t)i);
    snprintf(name, sizeof name, "worker-%d", i);
    pthread_setname_np(tids[i], name);
  }
  pthread_sigmask(SIG_SETMASK, &was, NULL);
  printf("READY %d\n", getpid());
  fflush(stdout);
  if (threads == 0) {
    /* Not pause(): a SIGUSR1 handled just before it (e.g. right after the
     * restore, before the restarted call) would leave it waiting forever. */
    while (!got_usr1) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  } else {
    uint64_t seen = 0;
    while (!got_usr1) {
      pthread_mutex_lock(&lock);
      if (total == seen) wait_tick();
      seen = total;
      pthread_mutex_unlock(&lock);
    }
    /* Restored: the workers must still make progress. */
    pthread_mutex_lock(&lock);
    uint64_t at_signal = total;
    while (total < at_signal + 1000) wait_tick();
    pthread_mutex_unlock(&lock);
  }
  int names_ok = 1;
  for (int i = 0; i < threads; i++) {
    char name[16] = {0}, want[16];
    snprintf(want, sizeof want, "worker-%d", i);
    pthread_getname_np(tids[i], name, sizeof name);
    if (strcmp(name, want) != 0) names_ok = 0, printf("FAIL thread %d is named '%s'\n", i, name);
  }
  stop = 1;
  for (int i = 0; i < threads; i++) pthread_join(tids[i], NULL);
  uint64_t sum = 0;
  for (int i = 0; i < threads; i++) sum += counters[i];
  int ok = sum == total && names_ok;
  for (size_t i = 0; i < heap / 8 && ok; i++) ok = buf[i] == i * 2654435761u;
  printf("%s total=%llu\n", ok ? "PASS" : "FAIL", (unsigned long long)total);
  fflush(stdout);
  return ok ? 0 : 1;
}
