/* zdtm-style: an interval timer (ITIMER_REAL, periodic: SIGALRM) and two
 * POSIX timers, one SIGEV_SIGNAL with a sigev_value, one SIGEV_THREAD_ID
 * aimed at a worker thread, all periodic. Prints READY; after SIGUSR1 (sent
 * after restore) checks that the POSIX timers have the ids the program holds
 * (timer_gettime on them, /proc/self/timers, si_timerid of the signals), and
 * that all three keep firing with the right signal, value and thread. Prints
 * PASS, or FAIL and what. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VALUE_A 0x5eed1234
#define VALUE_B 0x7ead0042

static volatile sig_atomic_t got_usr1;
static volatile int alarms, fired_a, fired_b, wrong;
static volatile pid_t worker_tid;
static timer_t timer_a, timer_b;
static int sig_a, sig_b;

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
static void on_alarm(int sig) { (void)sig; alarms++; }

static void on_timer(int sig, siginfo_t* si, void* ctx) {
  (void)ctx;
  if (si->si_code != SI_TIMER) wrong |= 1;
  if (sig == sig_a) {
    if (si->si_value.sival_int != VALUE_A || si->si_timerid != (int)(intptr_t)timer_a) wrong |= 2;
    fired_a++;
  } else if (sig == sig_b) {
    if (si->si_value.sival_int != VALUE_B || si->si_timerid != (int)(intptr_t)timer_b) wrong |= 4;
    if ((pid_t)syscall(SYS_gettid) != worker_tid) wrong |= 8;
    fired_b++;
  }
}

static void* worker(void* arg) {
  (void)arg;
  worker_tid = (pid_t)syscall(SYS_gettid);
  for (;;) pause();
  return NULL;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {}
}

static int make_timer(timer_t* t, int notify, int sig, int value, long period_ns) {
  struct sigevent ev;
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = notify;
  ev.sigev_signo = sig;
  ev.sigev_value.sival_int = value;
  if (notify == SIGEV_THREAD_ID) ev._sigev_un._tid = worker_tid;
  struct itimerspec its = {{0, period_ns}, {0, period_ns}};
  return timer_create(CLOCK_MONOTONIC, &ev, t) == 0 && timer_settime(*t, 0, &its, NULL) == 0;
}

/* Both ids, with the right signal and notification, in /proc/self/timers. */
static int listed(void) {
  FILE* f = fopen("/proc/self/timers", "r");
  if (!f) return 0;
  char line[256];
  int id = -1, found = 0;
  while (fgets(line, sizeof line, f)) {
    int sig;
    unsigned long long value;
    char how[32];
    if (sscanf(line, "ID: %d", &id) == 1) continue;
    if (sscanf(line, "signal: %d/%llx", &sig, &value) == 2) {
      if (id == (int)(intptr_t)timer_a && sig == sig_a && value == VALUE_A) found |= 1;
      if (id == (int)(intptr_t)timer_b && sig == sig_b && value == VALUE_B) found |= 2;
    }
    if (sscanf(line, "notify: %31s", how) == 1 && id == (int)(intptr_t)timer_b && strncmp(how, "signal/tid.", 11) == 0 &&
        atoi(how + 11) == worker_tid)
      found |= 4;
  }
  fclose(f);
  return found == 7;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  sig_a = SIGRTMIN + 2;
  sig_b = SIGRTMIN + 3;
  sa.sa_sigaction = on_timer;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(sig_a, &sa, NULL);
  sigaction(sig_b, &sa, NULL);

  pthread_t th;
  if (pthread_create(&th, NULL, worker, NULL) != 0) return 2;
  while (!worker_tid) sleep_ms(1);
  /* A timer made first and deleted: the ids the program holds are not 0 and 1. */
  timer_t gap;
  if (timer_create(CLOCK_MONOTONIC, NULL, &gap) != 0) return 2;
  if (!make_timer(&timer_a, SIGEV_SIGNAL, sig_a, VALUE_A, 30 * 1000000L)) return 2;
  if (!make_timer(&timer_b, SIGEV_THREAD_ID, sig_b, VALUE_B, 40 * 1000000L)) return 2;
  timer_delete(gap);
  struct itimerval it = {{0, 25000}, {0, 25000}};
  if (setitimer(ITIMER_REAL, &it, NULL) != 0) return 2;
  printf("READY timers %d %d\n", (int)(intptr_t)timer_a, (int)(intptr_t)timer_b);
  fflush(stdout);

  while (!got_usr1) sleep_ms(5);
  int a0 = fired_a, b0 = fired_b, r0 = alarms;
  sleep_ms(400);
  int ok = 1;
  struct itimerspec cur;
  if (timer_gettime(timer_a, &cur) != 0 || cur.it_interval.tv_nsec != 30 * 1000000L)
    ok = 0, printf("FAIL timer_gettime of timer %d\n", (int)(intptr_t)timer_a);
  if (timer_gettime(timer_b, &cur) != 0 || cur.it_interval.tv_nsec != 40 * 1000000L)
    ok = 0, printf("FAIL timer_gettime of timer %d\n", (int)(intptr_t)timer_b);
  struct itimerval ir;
  if (getitimer(ITIMER_REAL, &ir) != 0 || ir.it_interval.tv_usec != 25000) ok = 0, printf("FAIL itimer interval\n");
  if (!listed()) ok = 0, printf("FAIL /proc/self/timers does not list the timers as created\n");
  if (fired_a - a0 < 3) ok = 0, printf("FAIL timer a fired %d times in 400 ms\n", fired_a - a0);
  if (fired_b - b0 < 3) ok = 0, printf("FAIL timer b fired %d times in 400 ms\n", fired_b - b0);
  if (alarms - r0 < 3) ok = 0, printf("FAIL SIGALRM came %d times in 400 ms\n", alarms - r0);
  if (wrong) ok = 0, printf("FAIL a timer signal came with the wrong code, value, id or thread (%d)\n", wrong);
  if (ok) printf("PASS timers a=%d b=%d alarms=%d\n", fired_a, fired_b, alarms);
  fflush(stdout);
  return ok ? 0 : 1;
}
