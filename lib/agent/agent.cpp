// The wpckpt agent (see wpckpt_agent.h). Built as exception-free C++ that
// needs no libstdc++ runtime: only syscalls, glibc and lib/base/uapi
// constants. It runs inside other people's programs, so it is careful:
// no allocation, no threads, no output, and every failure is recorded in the
// state page for the tool to report instead of disturbing the program.
#include "lib/agent/wpckpt_agent.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "lib/base/uapi/agent_state.hpp"
#include "lib/base/uapi/userfaultfd.hpp"

namespace {

using namespace wpckpt::uapi;

int g_uffd = -1;
int g_state_fd = -1;
unsigned long long g_features = 0;
bool g_atfork_registered = false;

struct Uffd {
  int fd;
  int err;
  const char* route;
};

// The three routes, most capable first: a uffd that also sees kernel-mode
// faults; the unprivileged user-mode-only one (with WP_ASYNC it still sees
// kernel writes such as read(2), docs/KERNEL.md §2); /dev/userfaultfd.
Uffd open_uffd() {
  const int flags = O_CLOEXEC | O_NONBLOCK;
  const char* routes = getenv(kAgentRoutesEnv);
  int err = ENOSYS;  // when no route is allowed
  if (agent_route_allowed(routes, kRouteSyscall)) {
    long fd = syscall(kNrUserfaultfd, flags);
    if (fd >= 0) return {static_cast<int>(fd), 0, kRouteSyscall};
    err = errno;
  }
  if (agent_route_allowed(routes, kRouteUserModeOnly)) {
    long fd = syscall(kNrUserfaultfd, flags | kUffdUserModeOnly);
    if (fd >= 0) return {static_cast<int>(fd), 0, kRouteUserModeOnly};
    if (err == ENOSYS) err = errno;
  }
  if (agent_route_allowed(routes, kRouteDev)) {
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
      long fd = ioctl(dev, kUserfaultfdIocNew, flags);
      int dev_err = errno;
      close(dev);
      if (fd >= 0) return {static_cast<int>(fd), 0, kRouteDev};
      err = dev_err;
    }
  }
  return {-1, err, ""};
}

// Asks for WP_ASYNC and nothing else: any EVENT_* feature would make the
// program's munmap/mremap/madvise/fork wait for a reader (docs/KERNEL.md §5).
int enable_wp_async(int uffd, unsigned long long* features) {
  UffdioApi api{kUffdApi, kFeatWpAsync, 0};
  if (ioctl(uffd, kUffdioApi, &api) != 0) return errno;
  *features = kFeatWpAsync;
  return 0;
}

// Direct system calls for create_agent_state_fd: -errno on failure.
long direct_syscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4) {
  long r = syscall(nr, a1, a2, a3, a4);
  return r < 0 ? -errno : r;
}

int start_fresh() {
  Uffd u = open_uffd();
  int err = u.err;
  if (u.fd >= 0) {
    err = enable_wp_async(u.fd, &g_features);
    if (err != 0) {
      close(u.fd);
      u.fd = -1;
    }
  }
  g_uffd = u.fd;
  AgentState state = make_agent_state(getpid(), u.fd, err, g_features, u.route);
  long fd = create_agent_state_fd(direct_syscall, reinterpret_cast<uint64_t>(kAgentMemfdName),
                                  reinterpret_cast<uint64_t>(&state));
  g_state_fd = fd < 0 ? -1 : static_cast<int>(fd);
  if (fd < 0) return static_cast<int>(fd);
  return err == 0 ? 0 : -err;
}

// fork child: the inherited uffd still targets the parent's address space
// (docs/KERNEL.md §2): drop it and become a target of our own.
void after_fork_in_child() {
  if (g_state_fd < 0 && g_uffd < 0) return;
  wpckpt_agent_stop();
  start_fresh();
}

}  // namespace

extern "C" int wpckpt_agent_start(void) {
  if (g_state_fd >= 0) return 0;
  if (!g_atfork_registered) {
    if (pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0) g_atfork_registered = true;
  }
  return start_fresh();
}

extern "C" int wpckpt_agent_uffd(void) { return g_uffd; }

extern "C" unsigned long long wpckpt_agent_features(void) { return g_uffd >= 0 ? g_features : 0; }

extern "C" void wpckpt_agent_stop(void) {
  if (g_uffd >= 0) close(g_uffd);
  if (g_state_fd >= 0) close(g_state_fd);
  g_uffd = g_state_fd = -1;
  g_features = 0;
}

#ifdef WPCKPT_AGENT_PRELOAD
// Runs when the dynamic loader maps the library, before main().
__attribute__((constructor)) static void wpckpt_agent_preload_start() {
  const char* mode = getenv("WPCKPT_AGENT");
  if (mode != nullptr && strcmp(mode, "off") == 0) return;
  wpckpt_agent_start();
}
#endif
