/* A process holding one kind of state that a dump must refuse (or, for
 * "deleted-map", "posix-timer", "itimer" and "none", save), zdtm style: it sets the state up, prints
 * "READY pid=<pid> child=<pid or 0>", then prints "TICK <n>" every 50 ms; on
 * SIGUSR2 it checks that the state is still as it set it up and prints
 * "INTACT <kind>" or "BROKEN <kind> <what> <errno>"; on SIGUSR1 it exits with
 * status 3 (a program that fails at once after a restore).
 *
 *   held_state KIND DIR      DIR: a directory for its files (the test's own)
 *
 * KIND: child (a sleeping child), zombie (an unreaped child), thread-child (a
 * child forked by a second thread), deleted-fd (an open 2 MiB file, unlinked),
 * deleted-map (a file mapped private and shared, unlinked and closed),
 * deleted-cwd (working directory removed), posix-timer, itimer, sysv-shm,
 * flock, posix-lock, seccomp (an allow-all filter), uts-ns (own UTS
 * namespace), aio (an io_setup context), session-leader (setsid), group-leader
 * (setpgid(0, 0)), none. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGES 4
static const char* kind;
static char path[4096];
static pid_t child;
static int fd = -1;
static int probe_fd = -1;
static unsigned char* priv_map;
static unsigned char* shared_map;
static unsigned char* shm;
static int shm_id = -1;
static timer_t timer;
static aio_context_t aio_ctx;
static volatile sig_atomic_t check_requested;

static void on_usr1(int sig) {
  (void)sig;
  _exit(3);
}

static void on_usr2(int sig) {
  (void)sig;
  check_requested = 1;
}

static void die(const char* what) {
  printf("SETUP-FAILED %s %s %d\n", kind, what, errno);
  fflush(stdout);
  exit(2);
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + 3); }

static void fill(unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = pattern(i);
}

static int same(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != pattern(i)) return 0;
  return 1;
}

/* A child that dies with the thread that forked it (the tests stop it by
 * pid too): never left behind, whatever happens to the test. */
static pid_t fork_sleeper(void) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    for (;;) pause();
  }
  return pid;
}

static volatile pid_t thread_child;

static void* fork_from_thread(void* arg) {
  (void)arg;
  thread_child = fork_sleeper();
  for (;;) pause();  /* the child's parent: it stays */
  return NULL;
}

static void write_file(const char* name, size_t bytes) {
  snprintf(path, sizeof path, "%s", name);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("open");
  unsigned char buf[4096 * PAGES];
  fill(buf, bytes);
  if (write(fd, buf, bytes) != (ssize_t)bytes) die("write");
}

static void set_up(const char* dir) {
  char name[4096];
  size_t bytes = 4096 * PAGES;
  if (!strcmp(kind, "child")) {
    child = fork_sleeper();
    if (child < 0) die("fork");
  } else if (!strcmp(kind, "zombie")) {
    child = fork();
    if (child < 0) die("fork");
    if (child == 0) _exit(7);
    siginfo_t si;
    memset(&si, 0, sizeof si);  /* until it is a zombie: waitid without reaping */
    if (waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT) != 0) die("waitid");
  } else if (!strcmp(kind, "thread-child")) {
    pthread_t t;
    if (pthread_create(&t, NULL, fork_from_thread, NULL) != 0) die("pthread_create");
    while (thread_child == 0) usleep(1000);
    child = thread_child;
    if (child < 0) die("fork");
  } else if (!strcmp(kind, "deleted-fd")) {
    snprintf(name, sizeof name, "%s/held-deleted", dir);
    write_file(name, bytes);
    /* 2 MiB: above the default --ghost-limit, so the dump refuses it (a
     * smaller one is saved: tests/e2e/ghost_files_test.sh). */
    if (ftruncate(fd, 2 << 20) != 0) die("ftruncate");
    if (unlink(path) != 0) die("unlink");
  } else if (!strcmp(kind, "deleted-map")) {
    snprintf(name, sizeof name, "%s/held-mapped", dir);
    write_file(name, bytes);
    priv_map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    shared_map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (priv_map == MAP_FAILED || shared_map == MAP_FAILED) die("mmap");
    /* Page 0 of the private view is written (copied), the rest is file data. */
    priv_map[0] = pattern(0);
    shared_map[4096] = pattern(4096);
    if (unlink(path) != 0 || close(fd) != 0) die("unlink");
    fd = -1;
  } else if (!strcmp(kind, "deleted-cwd")) {
    snprintf(name, sizeof name, "%s/held-cwd", dir);
    if (mkdir(name, 0700) != 0 || chdir(name) != 0 || rmdir(name) != 0) die("rmdir");
  } else if (!strcmp(kind, "posix-timer")) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_NONE;
    struct itimerspec its = {{0, 0}, {3600, 0}};
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer) != 0 || timer_settime(timer, 0, &its, NULL) != 0)
      die("timer_create");
  } else if (!strcmp(kind, "itimer")) {
    struct itimerval it = {{0, 0}, {3600, 0}};
    if (setitimer(ITIMER_REAL, &it, NULL) != 0) die("setitimer");
  } else if (!strcmp(kind, "sysv-shm")) {
    int id = shmget(IPC_PRIVATE, bytes, IPC_CREAT | 0600);
    if (id < 0) die("shmget");
    shm_id = id;
    shm = shmat(id, NULL, 0);
    /* Removed now: the segment goes away when this process does, however it ends. */
    if (shm == (void*)-1 || shmctl(id, IPC_RMID, NULL) != 0) die("shmat");
    fill(shm, bytes);
  } else if (!strcmp(kind, "flock") || !strcmp(kind, "posix-lock")) {
    snprintf(name, sizeof name, "%s/held-lock", dir);
    write_file(name, bytes);
    if (!strcmp(kind, "flock")) {
      if (flock(fd, LOCK_EX) != 0) die("flock");
    } else {
      struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
      probe_fd = open(path, O_RDWR | O_CLOEXEC);
      if (probe_fd < 0 || fcntl(fd, F_SETLK, &l) != 0) die("F_SETLK");
    }
  } else if (!strcmp(kind, "seccomp")) {
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {1, &allow};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      die("seccomp");
  } else if (!strcmp(kind, "uts-ns")) {
    if (unshare(CLONE_NEWUTS) != 0 || sethostname("held-state", 10) != 0) die("unshare");
  } else if (!strcmp(kind, "aio")) {
    if (syscall(SYS_io_setup, 8, &aio_ctx) != 0) die("io_setup");
  } else if (!strcmp(kind, "session-leader")) {
    if (setsid() < 0) die("setsid");
  } else if (!strcmp(kind, "group-leader")) {
    if (setpgid(0, 0) != 0) die("setpgid");
  } else if (strcmp(kind, "none") != 0) {
    errno = EINVAL;
    die("unknown kind");
  }
}

/* 0 when the state is as set up; otherwise what differs. */
static const char* check(void) {
  size_t bytes = 4096 * PAGES;
  if (!strcmp(kind, "child") || !strcmp(kind, "thread-child")) {
    if (kill(child, 0) != 0) return "child gone";
    if (waitpid(child, NULL, WNOHANG) != 0) return "child exited";
  } else if (!strcmp(kind, "zombie")) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)child, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return "waitid";
    if (si.si_pid != child || si.si_status != 7) return "zombie status";
  } else if (!strcmp(kind, "deleted-fd")) {
    unsigned char buf[4096 * PAGES];
    if (pread(fd, buf, bytes, 0) != (ssize_t)bytes || !same(buf, bytes)) return "contents";
  } else if (!strcmp(kind, "deleted-map")) {
    if (!same(priv_map, bytes)) return "private mapping";
    if (!same(shared_map, bytes)) return "shared mapping";
  } else if (!strcmp(kind, "deleted-cwd")) {
    struct stat st;
    if (stat(".", &st) != 0 || st.st_nlink != 0) return "cwd";
  } else if (!strcmp(kind, "posix-timer")) {
    struct itimerspec its;
    if (timer_gettime(timer, &its) != 0 || its.it_value.tv_sec == 0) return "timer";
  } else if (!strcmp(kind, "itimer")) {
    struct itimerval it;
    if (getitimer(ITIMER_REAL, &it) != 0 || it.it_value.tv_sec == 0) return "itimer";
  } else if (!strcmp(kind, "sysv-shm")) {
    if (!same(shm, bytes)) return "segment";
    /* The same segment by its id: its size, removed (SHM_DEST), attached here. */
    struct shmid_ds ds;
    if (shmctl(shm_id, IPC_STAT, &ds) != 0) return "shmctl";
    if (ds.shm_segsz != bytes || !(ds.shm_perm.mode & SHM_DEST) || ds.shm_nattch != 1) return "segment identity";
  } else if (!strcmp(kind, "flock")) {
    int other = open(path, O_RDWR | O_CLOEXEC);
    if (other < 0) return "open";
    int r = flock(other, LOCK_EX | LOCK_NB);
    close(other);
    if (r == 0 || errno != EWOULDBLOCK) return "lock";
  } else if (!strcmp(kind, "posix-lock")) {
    /* Through a second description opened at setup: closing any descriptor of
     * the file would drop the process's POSIX locks on it. */
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(probe_fd, F_OFD_GETLK, &l) != 0 || l.l_type != F_WRLCK || l.l_pid != getpid()) return "lock";
  } else if (!strcmp(kind, "seccomp")) {
    char line[256];
    int mode = -1;
    FILE* f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
      if (sscanf(line, "Seccomp: %d", &mode) == 1) break;
    if (f) fclose(f);
    if (mode != 2) return "seccomp";
  } else if (!strcmp(kind, "uts-ns")) {
    struct utsname u;
    if (uname(&u) != 0 || strcmp(u.nodename, "held-state") != 0) return "hostname";
  } else if (!strcmp(kind, "session-leader")) {
    if (getsid(0) != getpid() || getpgrp() != getpid()) return "session";
  } else if (!strcmp(kind, "group-leader")) {
    if (getpgrp() != getpid() || getsid(0) == getpid()) return "group";
  } else if (!strcmp(kind, "aio")) {
    const uint32_t* ring = (const uint32_t*)(uintptr_t)aio_ctx;
    if (aio_ctx == 0 || ring[4] != 0xa10a10a1u) return "aio ring";
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: held_state KIND DIR\n");
    return 2;
  }
  kind = argv[1];
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  set_up(argv[2]);
  printf("READY pid=%d child=%d\n", (int)getpid(), (int)child);
  for (unsigned long n = 0;; ++n) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (check_requested) {
      check_requested = 0;
      const char* what = check();
      if (what)
        printf("BROKEN %s %s %d\n", kind, what, errno);
      else
        printf("INTACT %s\n", kind);
    }
    printf("TICK %lu\n", n);
  }
}
