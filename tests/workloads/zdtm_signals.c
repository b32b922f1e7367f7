/* zdtm-style: signal handlers, a blocked mask, pending signals. SIGUSR2 and
 * SIGRTMIN+1 are blocked; SIGUSR2 is pending once (process-wide), SIGRTMIN+1
 * three times with values 1, 2, 3 (one thread-directed). Prints READY, waits
 * for SIGUSR1 (after restore), checks mask and pending set, unblocks, checks
 * that the handlers ran with the right values in order. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1, usr2_count, rt_count;
static volatile int rt_values[8];

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
static void on_usr2(int sig) { (void)sig; usr2_count++; }
static void on_rt(int sig, siginfo_t* info, void* ctx) {
  (void)sig, (void)ctx;
  if (rt_count < 8) rt_values[rt_count] = info->si_value.sival_int;
  rt_count++;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  sa.sa_sigaction = on_rt;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGRTMIN + 1, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  sigaddset(&block, SIGRTMIN + 1);
  sigprocmask(SIG_BLOCK, &block, NULL);
  kill(getpid(), SIGUSR2);
  union sigval v;
  v.sival_int = 1;
  sigqueue(getpid(), SIGRTMIN + 1, v);
  v.sival_int = 2;
  sigqueue(getpid(), SIGRTMIN + 1, v);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  si.si_signo = SIGRTMIN + 1;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_value.sival_int = 3;
  syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGRTMIN + 1, &si); /* thread-directed */
  printf("READY\n");
  fflush(stdout);
  /* Not pause(): a SIGUSR1 handled just before it (e.g. right after the
   * restore, before the restarted call) would leave it waiting forever. */
  while (!got_usr1) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }

  int ok = 1;
  sigset_t now, pending;
  sigprocmask(SIG_SETMASK, NULL, &now);
  sigpending(&pending);
  if (!sigismember(&now, SIGUSR2) || !sigismember(&now, SIGRTMIN + 1)) ok = 0, printf("FAIL mask lost\n");
  if (!sigismember(&pending, SIGUSR2) || !sigismember(&pending, SIGRTMIN + 1)) ok = 0, printf("FAIL pending lost\n");
  struct sigaction old;
  sigaction(SIGPIPE, NULL, &old);
  if (old.sa_handler != SIG_IGN) ok = 0, printf("FAIL SIG_IGN lost\n");
  sigprocmask(SIG_UNBLOCK, &block, NULL);
  if (usr2_count != 1) ok = 0, printf("FAIL usr2 ran %d times\n", (int)usr2_count);
  if (rt_count != 3) ok = 0, printf("FAIL rt ran %d times\n", (int)rt_count);
  int seen[4] = {0};
  for (int i = 0; i < rt_count && i < 3; i++)
    if (rt_values[i] >= 1 && rt_values[i] <= 3) seen[rt_values[i]]++;
  if (seen[1] != 1 || seen[2] != 1 || seen[3] != 1) ok = 0, printf("FAIL rt values\n");
  printf("%s\n", ok ? "PASS" : "FAIL");
  fflush(stdout);
  return ok ? 0 : 1;
}
