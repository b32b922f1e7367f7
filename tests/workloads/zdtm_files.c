/* zdtm-style: descriptors and mapped files. DATA.log opened with
 * O_CREAT|O_TRUNC and written ("before dump"), a second descriptor at offset
 * 6 of DATA, a pipe with unread bytes, an eventfd, DATA mapped shared and
 * private (the private copy modified), a memfd both open and mapped shared
 * (one object after the restore too), a memfd mapped twice with its fd
 * closed (a JIT's double mapping: still one object), cwd and umask set. Prints READY,
 * waits for SIGUSR1 (after restore) and checks all of it. Usage: zdtm_files DATA */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  char log[4096];
  snprintf(log, sizeof log, "%s.log", argv[1]);
  int data = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
  const char text[] = "hello world, this is the data file\n";
  if (write(data, text, sizeof text - 1) != sizeof text - 1) return 2;
  ftruncate(data, 8192);
  lseek(data, 6, SEEK_SET);
  int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  if (write(logfd, "before dump\n", 12) != 12) return 2;
  int p[2];
  if (pipe(p) != 0) return 2;
  if (write(p[1], "unread pipe bytes", 17) != 17) return 2;
  int ev = eventfd(5, EFD_NONBLOCK);
  char* shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, data, 0);
  char* priv = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, data, 0);
  priv[0] = 'J';  /* a private copy: the file keeps 'h' */
  shared[4096] = 'S';
  int mfd = memfd_create("zdtm", 0);
  ftruncate(mfd, 4096);
  char* mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  strcpy(mem, "memfd");
  /* A JIT's double mapping: one memfd at two addresses, its fd closed. */
  int jfd = memfd_create("jit", 0);
  ftruncate(jfd, 8192);
  char* rw = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, jfd, 0);
  char* ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, jfd, 4096);
  close(jfd);
  strcpy(rw + 4096, "code");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", argv[1]);
  *strrchr(dir, '/') = 0;
  chdir(dir);
  umask(0027);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  printf("READY\n");
  fflush(stdout);
  /* Not pause(): a SIGUSR1 handled just before it (e.g. right after the
   * restore, before the restarted call) would leave it waiting forever. */
  while (!got_usr1) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }

  int ok = 1;
  char buf[64] = {0};
  if (read(data, buf, 5) != 5 || memcmp(buf, "world", 5) != 0) ok = 0, printf("FAIL offset: %s\n", buf);
  memset(buf, 0, sizeof buf);
  if (read(p[0], buf, sizeof buf) != 17 || memcmp(buf, "unread pipe bytes", 17) != 0) ok = 0, printf("FAIL pipe\n");
  uint64_t count = 0;
  if (read(ev, &count, 8) != 8 || count != 5) ok = 0, printf("FAIL eventfd %llu\n", (unsigned long long)count);
  if (priv[0] != 'J' || priv[1] != 'e') ok = 0, printf("FAIL private mapping\n");
  if (shared[0] != 'h' || shared[4096] != 'S') ok = 0, printf("FAIL shared mapping\n");
  shared[1] = 'E';  /* still the file: visible through pread */
  char c = 0;
  if (pread(data, &c, 1, 1) != 1 || c != 'E') ok = 0, printf("FAIL shared mapping not the file\n");
  if (pwrite(mfd, "via-fd", 6, 0) != 6 || memcmp(mem, "via-fd", 6) != 0) ok = 0, printf("FAIL memfd mapping apart from its fd\n");
  mem[0] = 'M';
  if (memcmp(ro, "code", 4) != 0) ok = 0, printf("FAIL double mapping contents\n");
  rw[4096] = 'C';
  if (ro[0] != 'C') ok = 0, printf("FAIL double mapping apart\n");
  if (pread(mfd, &c, 1, 0) != 1 || c != 'M') ok = 0, printf("FAIL memfd fd apart from its mapping\n");
  if (write(logfd, "after restore\n", 14) != 14) ok = 0, printf("FAIL log write\n");
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, dir) != 0) ok = 0, printf("FAIL cwd\n");
  mode_t old = umask(0);
  if (old != 0027) ok = 0, printf("FAIL umask %o\n", old);
  if (fcntl(p[1], F_GETFD) != 0 || fcntl(data, F_GETFL) & O_APPEND) ok = 0, printf("FAIL flags\n");
  if (!(fcntl(logfd, F_GETFL) & O_APPEND)) ok = 0, printf("FAIL append flag\n");
  printf("%s\n", ok ? "PASS" : "FAIL");
  fflush(stdout);
  return ok ? 0 : 1;
}
