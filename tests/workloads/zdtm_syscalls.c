/* zdtm-style: a thread frozen inside read(2) on an empty pipe, the main
 * thread inside nanosleep(2) (restarted or EINTR, both handled), a timerfd
 * and an interval timer running. Prints READY; after SIGUSR1 (sent after
 * restore) the main thread writes to the pipe: the reader must get exactly
 * those bytes; the timerfd must have ticked. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static int p[2];
static char received[64];
static volatile int reader_result = -2;

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static void* reader(void* arg) {
  (void)arg;
  /* SIGUSR1 is for the main thread: a per-thread mask the restore must keep. */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);
  reader_result = (int)read(p[0], received, sizeof received - 1);
  return NULL;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  if (pipe(p) != 0) return 2;
  pthread_t t;
  pthread_create(&t, NULL, reader, NULL);
  int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec its = {{0, 20 * 1000 * 1000}, {0, 20 * 1000 * 1000}};
  timerfd_settime(tfd, 0, &its, NULL);
  printf("READY\n");
  fflush(stdout);
  while (!got_usr1) {
    struct timespec ts = {3600, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !got_usr1) {
    }
  }
  int ok = 1;
  if (write(p[1], "wake up", 7) != 7) ok = 0;
  pthread_join(t, NULL);
  if (reader_result != 7 || strcmp(received, "wake up") != 0) ok = 0, printf("FAIL reader got %d\n", reader_result);
  uint64_t ticks = 0;
  if (read(tfd, &ticks, 8) != 8 || ticks == 0) ok = 0, printf("FAIL timerfd\n");
  printf("%s\n", ok ? "PASS" : "FAIL");
  fflush(stdout);
  return ok ? 0 : 1;
}
