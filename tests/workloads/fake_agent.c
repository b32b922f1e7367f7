/* A hostile process that pretends to be a wpckpt agent: a memfd named
 * "wpckpt-agent" (what the tool looks for), and, depending on the mode, a
 * page that is not what the agent writes. wpckpt must refuse it with an
 * error, never crash (a mapped page the owner can truncate raises SIGBUS).
 *
 *   fake_agent MODE
 *     empty       unsealed memfd of size 0
 *     unsealed    a plausible page (right magic, version, pid, a real
 *                 userfaultfd number) but no seals: it could shrink later
 *     small       sealed, but 100 bytes long
 *     big         sealed, 2 pages long
 *     garbage     sealed page of the right size full of 0xff
 *
 * Prints "ready" when set up, then sleeps until killed. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The layout of lib/base/uapi/agent_state.hpp, repeated here on purpose:
 * this is what an attacker would write. */
struct page {
  uint64_t magic;
  uint32_t version;
  int32_t pid, uffd, uffd_errno;
  uint64_t features, token;
  char route[16];
  uint64_t lock_owner, last_scan, last_scan_ns;
};

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "empty";
  int seal = strcmp(mode, "empty") != 0 && strcmp(mode, "unsealed") != 0;
  int fd = memfd_create("wpckpt-agent", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return perror("memfd_create"), 1;
  off_t size = 4096;
  if (!strcmp(mode, "empty")) size = 0;
  if (!strcmp(mode, "small")) size = 100;
  if (!strcmp(mode, "big")) size = 8192;
  if (ftruncate(fd, size) != 0) return perror("ftruncate"), 1;
  if (!strcmp(mode, "garbage")) {
    char junk[4096];
    memset(junk, 0xff, sizeof junk);
    if (pwrite(fd, junk, sizeof junk, 0) != (ssize_t)sizeof junk) return perror("pwrite"), 1;
  } else if (size >= (off_t)sizeof(struct page)) {
    struct page p;
    memset(&p, 0, sizeof p);
    p.magic = 0x47415450434b5057ull;
    p.version = 1;
    p.pid = getpid();
    p.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* user mode only */);
    p.features = 1ull << 15;
    strcpy(p.route, "fake");
    if (pwrite(fd, &p, sizeof p, 0) != (ssize_t)sizeof p) return perror("pwrite"), 1;
  }
  if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) return perror("seal"), 1;
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
