#include "tracker/agent_link.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>

#include "lib/base/uapi/process.hpp"

namespace wpckpt::tracker {
namespace {

using uapi::AgentState;

std::string fd_link(const std::string& path) {
  char buf[256];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return {};
  buf[n] = '\0';
  return buf;
}

Error no_agent(pid_t pid) {
  return make_error(0, "find the wpckpt agent", "in pid " + std::to_string(pid))
      .with_hint("pid " + std::to_string(pid) + " has no wpckpt agent; start it with `wpckpt run -- CMD`");
}

// The fd number of the agent's state memfd in the target, or -1.
Result<int> find_state_fd(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    Error e = errno_error("open", dir);
    if (e.err == ENOENT) e.hint = "no process " + std::to_string(pid);
    return e;
  }
  int found = -1;
  while (dirent* ent = readdir(d)) {
    if (ent->d_name[0] == '.') continue;
    if (fd_link(dir + "/" + ent->d_name) == uapi::kAgentMemfdLink) {
      found = std::atoi(ent->d_name);
      break;
    }
  }
  closedir(d);
  return found;
}

Result<UniqueFd> copy_fd(int pidfd, int target_fd, const std::string& what) {
  long fd = syscall(uapi::kNrPidfdGetfd, pidfd, target_fd, 0);
  if (fd < 0) {
    Error e = errno_error("pidfd_getfd", what);
    if (e.err == EPERM) e.hint = "run wpckpt as the process's owner (or with CAP_SYS_PTRACE)";
    return e;
  }
  return UniqueFd(static_cast<int>(fd));
}

bool process_alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

}  // namespace

AgentLink::AgentLink(pid_t pid, UniqueFd pidfd, UniqueFd state_fd, UniqueFd uffd, AgentState* state)
    : pid_(pid), pidfd_(std::move(pidfd)), state_fd_(std::move(state_fd)), uffd_(std::move(uffd)), state_(state) {}

AgentLink::AgentLink(AgentLink&& o) noexcept
    : pid_(o.pid_),
      pidfd_(std::move(o.pidfd_)),
      state_fd_(std::move(o.state_fd_)),
      uffd_(std::move(o.uffd_)),
      state_(std::exchange(o.state_, nullptr)),
      locked_(std::exchange(o.locked_, false)) {}

AgentLink::~AgentLink() {
  if (state_ == nullptr) return;
  unlock();
  munmap(state_, uapi::kAgentStateSize);
}

Result<AgentLink> AgentLink::attach(pid_t pid) {
  std::string who = "pid " + std::to_string(pid);
  long raw_pidfd = syscall(uapi::kNrPidfdOpen, pid, 0);
  if (raw_pidfd < 0) {
    Error e = errno_error("pidfd_open", who);
    if (e.err == ESRCH) e.hint = "no process " + std::to_string(pid);
    return e;
  }
  UniqueFd pidfd(static_cast<int>(raw_pidfd));
  WPCKPT_TRY_ASSIGN(int state_number, find_state_fd(pid));
  if (state_number < 0) return no_agent(pid);
  WPCKPT_TRY_ASSIGN(UniqueFd state_fd, copy_fd(pidfd.get(), state_number, "the agent's state of " + who));
  void* map = mmap(nullptr, uapi::kAgentStateSize, PROT_READ | PROT_WRITE, MAP_SHARED, state_fd.get(), 0);
  if (map == MAP_FAILED) return errno_error("mmap", "the agent's state of " + who);
  auto* state = static_cast<AgentState*>(map);
  auto fail = [&](Error e) -> Result<AgentLink> {
    munmap(map, uapi::kAgentStateSize);
    return e;
  };
  if (state->magic != uapi::kAgentMagic || state->version != uapi::kAgentStateVersion)
    return fail(make_error(EPROTO, "read the agent's state", who)
                    .with_hint("the process runs another version of the wpckpt agent; restart it with this wpckpt"));
  if (state->pid != pid)
    return fail(make_error(ESRCH, "read the agent's state", who + " (the state belongs to pid " +
                                                                 std::to_string(state->pid) + ")")
                    .with_hint("the process was cloned without fork(); start it with `wpckpt run -- CMD`"));
  if (state->uffd < 0)
    return fail(make_error(state->uffd_errno, "the agent's userfaultfd", who)
                    .with_hint("the agent could not create a userfaultfd; see `wpckpt check`"));
  auto uffd = copy_fd(pidfd.get(), state->uffd, "the agent's userfaultfd of " + who);
  if (!uffd) return fail(std::move(uffd).error());
  if (fd_link("/proc/self/fd/" + std::to_string(uffd->get())) != "anon_inode:[userfaultfd]")
    return fail(make_error(EBADF, "the agent's userfaultfd", who + " fd " + std::to_string(state->uffd))
                    .with_hint("the program closed or replaced the agent's descriptor; tracking is lost, restart it"));
  return AgentLink(pid, std::move(pidfd), std::move(state_fd), std::move(uffd).value(), state);
}

std::string AgentLink::route() const { return std::string(state_->route, strnlen(state_->route, sizeof state_->route)); }

uint64_t AgentLink::last_scan() const {
  return std::atomic_ref<uint64_t>(state_->last_scan).load(std::memory_order_acquire);
}
uint64_t AgentLink::last_scan_ns() const {
  return std::atomic_ref<uint64_t>(state_->last_scan_ns).load(std::memory_order_acquire);
}

void AgentLink::begin_scan(uint64_t scan, uint64_t now_ns) {
  std::atomic_ref<uint64_t>(state_->last_scan_ns).store(now_ns, std::memory_order_release);
  std::atomic_ref<uint64_t>(state_->last_scan).store(scan, std::memory_order_release);
}

Result<void> AgentLink::lock() {
  std::atomic_ref<uint64_t> owner(state_->lock_owner);
  const uint64_t self = static_cast<uint64_t>(getpid());
  for (int attempt = 0; attempt < 3; ++attempt) {
    uint64_t current = 0;
    if (owner.compare_exchange_strong(current, self)) {
      locked_ = true;
      return ok();
    }
    if (current == self) break;
    if (process_alive(static_cast<pid_t>(current)))
      return make_error(EBUSY, "lock the tracking state", "pid " + std::to_string(pid_))
          .with_hint("wpckpt pid " + std::to_string(current) + " is checkpointing this process; wait for it");
    owner.compare_exchange_strong(current, 0);  // the holder died: take over
  }
  return make_error(EBUSY, "lock the tracking state", "pid " + std::to_string(pid_));
}

void AgentLink::unlock() {
  if (!locked_) return;
  uint64_t self = static_cast<uint64_t>(getpid());
  std::atomic_ref<uint64_t>(state_->lock_owner).compare_exchange_strong(self, 0);
  locked_ = false;
}

}  // namespace wpckpt::tracker
