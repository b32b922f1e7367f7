#include "lib/ptrace/agent_injection.hpp"

#include <fcntl.h>
#include <sys/syscall.h>

#include <cstring>
#include <optional>
#include <vector>

#include "lib/base/feature.hpp"
#include "lib/base/uapi/agent_state.hpp"
#include "lib/base/uapi/userfaultfd.hpp"

namespace wpckpt::ptrace {
namespace {

constexpr int kUffdFlags = O_CLOEXEC | O_NONBLOCK;
constexpr char kDevPath[] = "/dev/userfaultfd";

std::string in_process(pid_t pid) { return "in process " + std::to_string(pid); }

// Descriptors made so far in the process, closed again unless released.
class MadeFds {
 public:
  explicit MadeFds(Injector& inj) : inj_(inj) {}
  ~MadeFds() {
    for (int fd : fds_) (void)inj_.syscall(SYS_close, static_cast<uint64_t>(fd));
  }
  void add(int fd) { fds_.push_back(fd); }
  void replace(int old_fd, int new_fd) {
    for (int& fd : fds_)
      if (fd == old_fd) fd = new_fd;
  }
  void release() { fds_.clear(); }

 private:
  Injector& inj_;
  std::vector<int> fds_;
};

// One route: the new uffd, or -errno.
Result<long> open_route(Injector& inj, const char* route) {
  if (std::strcmp(route, uapi::kRouteSyscall) == 0) return inj.syscall(uapi::kNrUserfaultfd, kUffdFlags);
  if (std::strcmp(route, uapi::kRouteUserModeOnly) == 0)
    return inj.syscall(uapi::kNrUserfaultfd, kUffdFlags | uapi::kUffdUserModeOnly);
  WPCKPT_TRY(inj.write(inj.data(), kDevPath, sizeof kDevPath));
  WPCKPT_TRY_ASSIGN(long dev, inj.syscall(SYS_openat, static_cast<uint64_t>(AT_FDCWD), inj.data(),
                                          O_RDWR | O_CLOEXEC));
  if (dev < 0) return dev;
  WPCKPT_TRY_ASSIGN(long fd, inj.syscall(SYS_ioctl, static_cast<uint64_t>(dev), uapi::kUserfaultfdIocNew, kUffdFlags));
  WPCKPT_TRY(inj.syscall(SYS_close, static_cast<uint64_t>(dev)));
  return fd;
}

struct Route {
  const char* feature;
  const char* name;
};
constexpr Route kRoutes[] = {{"userfaultfd_syscall", uapi::kRouteSyscall},
                             {"userfaultfd_user_mode_only", uapi::kRouteUserModeOnly},
                             {"dev_userfaultfd", uapi::kRouteDev}};

// The first route the kernel grants the process, with WP_ASYNC enabled.
Result<std::pair<int, const char*>> make_uffd(Injector& inj, MadeFds& made, pid_t pid) {
  int first_err = ENOSYS;
  for (const Route& r : kRoutes) {
    if (feature_disabled(r.feature)) continue;
    WPCKPT_TRY_ASSIGN(long fd, open_route(inj, r.name));
    if (fd >= 0) {
      made.add(static_cast<int>(fd));
      uapi::UffdioApi api{uapi::kUffdApi, uapi::kFeatWpAsync, 0};
      WPCKPT_TRY(inj.write(inj.data(), &api, sizeof api));
      WPCKPT_TRY(inj.checked_syscall("UFFDIO_API (WP_ASYNC)", in_process(pid), SYS_ioctl, static_cast<uint64_t>(fd),
                                     uapi::kUffdioApi, inj.data()));
      return std::pair{static_cast<int>(fd), r.name};
    }
    if (first_err == ENOSYS) first_err = static_cast<int>(-fd);
  }
  return make_error(first_err, "create a userfaultfd", in_process(pid))
      .with_hint("the process may create no userfaultfd by any route (see `wpckpt check`: "
                 "userfaultfd_user_mode_only needs nothing but a kernel with userfaultfd)");
}

// Moves `fd` where the request wants it; returns its number there.
Result<int> place(Injector& inj, MadeFds& made, pid_t pid, int fd, int exact, int lowest, const char* what) {
  long moved = fd;
  if (exact >= 0 && exact != fd) {
    WPCKPT_TRY_ASSIGN(moved, inj.checked_syscall(what, in_process(pid), SYS_dup3, static_cast<uint64_t>(fd),
                                                 static_cast<uint64_t>(exact), O_CLOEXEC));
  } else if (exact < 0 && lowest > fd) {
    WPCKPT_TRY_ASSIGN(moved, inj.syscall(SYS_fcntl, static_cast<uint64_t>(fd), F_DUPFD_CLOEXEC,
                                         static_cast<uint64_t>(lowest)));
    if (moved < 0) return fd;  // nothing free up there (EMFILE, EINVAL): stay
  } else {
    return fd;
  }
  made.replace(fd, static_cast<int>(moved));
  WPCKPT_TRY(inj.checked_syscall("close", in_process(pid), SYS_close, static_cast<uint64_t>(fd)));
  return static_cast<int>(moved);
}

// The sealed page, written by the agent's own writer (agent_state.hpp).
Result<int> make_state_page(Injector& inj, MadeFds& made, const AgentFdsRequest& r, int uffd, const char* route,
                            uint64_t& token) {
  uapi::AgentState page = uapi::make_agent_state(r.pid, uffd, 0, uapi::kFeatWpAsync, route, r.origin);
  token = page.token;
  const uint64_t page_addr = inj.data();
  const uint64_t name_addr = page_addr + sizeof page;
  WPCKPT_TRY(inj.write(page_addr, &page, sizeof page));
  WPCKPT_TRY(inj.write(name_addr, uapi::kAgentMemfdName, std::strlen(uapi::kAgentMemfdName) + 1));
  std::optional<Error> injection_failed;
  auto in_target = [&](long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4) -> long {
    auto res = inj.syscall(nr, a1, a2, a3, a4);
    if (!res) {
      if (!injection_failed) injection_failed = std::move(res).error();
      return -EIO;
    }
    return *res;
  };
  long memfd = uapi::create_agent_state_fd(in_target, name_addr, page_addr);
  if (injection_failed) return std::move(*injection_failed);
  if (memfd < 0) return make_error(static_cast<int>(-memfd), "create the agent's state page", in_process(r.pid));
  made.add(static_cast<int>(memfd));
  return static_cast<int>(memfd);
}

}  // namespace

Result<InjectedAgentFds> inject_agent_fds(Injector& inj, const AgentFdsRequest& r) {
  InjectedAgentFds out;
  MadeFds made(inj);
  WPCKPT_TRY_ASSIGN(auto uffd, make_uffd(inj, made, r.pid));
  out.route = uffd.second;
  WPCKPT_TRY_ASSIGN(out.uffd_fd, place(inj, made, r.pid, uffd.first, r.uffd_fd, r.lowest, "dup3 (uffd)"));
  if (r.with_state_page) {
    // The page names the uffd's final number: make it after the move.
    WPCKPT_TRY_ASSIGN(int memfd, make_state_page(inj, made, r, out.uffd_fd, uffd.second, out.token));
    WPCKPT_TRY_ASSIGN(out.state_fd, place(inj, made, r.pid, memfd, r.state_fd, r.lowest, "dup3 (agent state)"));
  }
  made.release();
  return out;
}

}  // namespace wpckpt::ptrace
