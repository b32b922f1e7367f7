#include "tracker/agent_link.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
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
  return make_error(ENOENT, "find the wpckpt agent", "in pid " + std::to_string(pid))
      .with_hint("pid " + std::to_string(pid) +
                 " has no wpckpt tracking: pre-dump, dump and watch attach to it (or start it with `wpckpt run -- CMD`)");
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

// The page the agent makes: a memfd of exactly one state page, sealed so
// that it can neither shrink nor grow (uapi::kAgentStateSeals). Mapping a
// file its owner can truncate would let the owner kill us with SIGBUS.
Result<void> check_state_fd(int fd, const std::string& who) {
  auto refuse = [&](const std::string& what) {
    return make_error(EPROTO, "check the agent's state page", who + ": " + what)
        .with_hint("the process holds a memfd named \"" + std::string(uapi::kAgentMemfdName) +
                   "\" that the wpckpt agent did not make; start the program with `wpckpt run -- CMD`");
  };
  struct stat st {};
  if (fstat(fd, &st) != 0) return errno_error("fstat", "the agent's state of " + who);
  if (!S_ISREG(st.st_mode)) return refuse("not a regular memfd");
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return refuse("it cannot be sealed (" + std::string(strerror(errno)) + ")");
  if ((seals & uapi::kAgentStateSeals) != uapi::kAgentStateSeals)
    return refuse("not sealed against resizing (seals " + std::to_string(seals) + ")");
  if (static_cast<uint64_t>(st.st_size) != uapi::kAgentStateSize)
    return refuse("it is " + std::to_string(st.st_size) + " bytes, not " + std::to_string(uapi::kAgentStateSize));
  return ok();
}

// One read of every field the agent writes, so that checks and uses agree
// even if the target rewrites the page meanwhile.
AgentState snapshot(const AgentState& live) {
  AgentState copy;
  std::memcpy(&copy, &live, sizeof copy);
  return copy;
}

bool process_alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

}  // namespace

AgentLink::AgentLink(pid_t pid, UniqueFd pidfd, UniqueFd state_fd, UniqueFd uffd, AgentState* state,
                     const AgentState& seen, int state_number)
    : pid_(pid),
      state_number_(state_number),
      pidfd_(std::move(pidfd)),
      state_fd_(std::move(state_fd)),
      uffd_(std::move(uffd)),
      state_(state),
      seen_(seen) {}

AgentLink::AgentLink(AgentLink&& o) noexcept
    : pid_(o.pid_),
      state_number_(o.state_number_),
      pidfd_(std::move(o.pidfd_)),
      state_fd_(std::move(o.state_fd_)),
      uffd_(std::move(o.uffd_)),
      state_(std::exchange(o.state_, nullptr)),
      seen_(o.seen_),
      locked_(std::exchange(o.locked_, false)) {}

AgentLink::~AgentLink() {
  if (state_ == nullptr) return;
  unlock();
  munmap(state_, uapi::kAgentStateSize);
}

namespace {

Result<UniqueFd> open_pidfd(pid_t pid) {
  long raw = syscall(uapi::kNrPidfdOpen, pid, 0);
  if (raw < 0) {
    Error e = errno_error("pidfd_open", "pid " + std::to_string(pid));
    if (e.err == ESRCH) e.hint = "no process " + std::to_string(pid);
    return e;
  }
  return UniqueFd(static_cast<int>(raw));
}

// A checked copy of the process's state memfd, or an empty fd when it has none.
Result<UniqueFd> copy_state_fd(pid_t pid, int pidfd, int& number) {
  WPCKPT_TRY_ASSIGN(number, find_state_fd(pid));
  if (number < 0) return UniqueFd();
  const std::string who = "pid " + std::to_string(pid);
  WPCKPT_TRY_ASSIGN(UniqueFd state_fd, copy_fd(pidfd, number, "the agent's state of " + who));
  // Any process can name a memfd "wpckpt-agent": nothing in it is trusted
  // until it is known to be a page that cannot change size under our mapping.
  WPCKPT_TRY(check_state_fd(state_fd.get(), who));
  return state_fd;
}

}  // namespace

Result<StatePage> AgentLink::find_state_page(pid_t pid) {
  WPCKPT_TRY_ASSIGN(UniqueFd pidfd, open_pidfd(pid));
  StatePage page;
  WPCKPT_TRY_ASSIGN(UniqueFd state_fd, copy_state_fd(pid, pidfd.get(), page.fd));
  if (!state_fd) return page;
  ssize_t n = pread(state_fd.get(), &page.seen, sizeof page.seen, 0);
  if (n != static_cast<ssize_t>(sizeof page.seen))
    return make_error(n < 0 ? errno : EIO, "read the agent's state", "pid " + std::to_string(pid));
  return page;
}

Result<AgentLink> AgentLink::attach(pid_t pid) {
  std::string who = "pid " + std::to_string(pid);
  WPCKPT_TRY_ASSIGN(UniqueFd pidfd, open_pidfd(pid));
  int state_number = -1;
  WPCKPT_TRY_ASSIGN(UniqueFd state_fd, copy_state_fd(pid, pidfd.get(), state_number));
  if (!state_fd) return no_agent(pid);
  void* map = mmap(nullptr, uapi::kAgentStateSize, PROT_READ | PROT_WRITE, MAP_SHARED, state_fd.get(), 0);
  if (map == MAP_FAILED) return errno_error("mmap", "the agent's state of " + who);
  auto* state = static_cast<AgentState*>(map);
  auto fail = [&](Error e) -> Result<AgentLink> {
    munmap(map, uapi::kAgentStateSize);
    return e;
  };
  // The target may still write the page: read each field once, then judge the copy.
  AgentState seen = snapshot(*state);
  if (seen.magic != uapi::kAgentMagic || seen.version != uapi::kAgentStateVersion)
    return fail(make_error(EPROTO, "read the agent's state", who)
                    .with_hint("the process runs another version of the wpckpt agent, or something that is not one; "
                               "restart it with `wpckpt run -- CMD` of this wpckpt"));
  if (seen.pid != pid)
    return fail(make_error(ESRCH, "read the agent's state", who + " (the state belongs to pid " +
                                                                 std::to_string(seen.pid) + ")")
                    .with_hint(seen.origin == uapi::kOriginAttached
                                   ? "a fork child of a process wpckpt attached to; pre-dump attaches it anew"
                                   : "the process was cloned without fork(); start it with `wpckpt run -- CMD`"));
  if (seen.uffd < 0) {
    int err = seen.uffd_errno > 0 && seen.uffd_errno < 4096 ? seen.uffd_errno : 0;
    return fail(make_error(err, "the agent's userfaultfd", who)
                    .with_hint("the agent could not create a userfaultfd; see `wpckpt check`"));
  }
  auto uffd = copy_fd(pidfd.get(), seen.uffd, "the agent's userfaultfd of " + who);
  if (!uffd) return fail(std::move(uffd).error());
  if (fd_link("/proc/self/fd/" + std::to_string(uffd->get())) != "anon_inode:[userfaultfd]")
    return fail(make_error(EBADF, "the agent's userfaultfd", who + " fd " + std::to_string(seen.uffd))
                    .with_hint("the program closed or replaced the agent's descriptor; tracking is lost, restart it"));
  return AgentLink(pid, std::move(pidfd), std::move(state_fd), std::move(uffd).value(), state, seen, state_number);
}

std::string AgentLink::route() const { return std::string(seen_.route, strnlen(seen_.route, sizeof seen_.route)); }

uint64_t AgentLink::last_scan() const {
  return std::atomic_ref<uint64_t>(state_->last_scan).load(std::memory_order_acquire);
}
uint64_t AgentLink::last_scan_ns() const {
  return std::atomic_ref<uint64_t>(state_->last_scan_ns).load(std::memory_order_acquire);
}

bool AgentLink::alive() const { return ::syscall(SYS_pidfd_send_signal, pidfd_.get(), 0, nullptr, 0) == 0; }

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
