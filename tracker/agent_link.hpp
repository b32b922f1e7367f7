// The tool's side of a cooperating process: copies of the agent's
// userfaultfd and state page (docs/KERNEL.md §2), taken with
// pidfd_getfd, which needs ptrace-attach rights over the process, so no other
// user can reach them. The state page carries the tracking epoch; a lock in
// it keeps two wpckpt instances from scanning one process at once.
// The page is the target's: attach() refuses one that is not sealed against
// resizing or not exactly one page (a fake agent's), and reads the agent's
// fields once; the epoch and lock words are read atomically and can only
// make the target's own images whole or its pre-dump wait.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "lib/base/result.hpp"
#include "lib/base/uapi/agent_state.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::tracker {

// A process's state page as found among its descriptors, checked (a sealed
// memfd of one page) and read once, without attaching to it.
struct StatePage {
  int fd = -1;  // its number in the process; -1: the process has none
  uapi::AgentState seen{};
};

class AgentLink {
 public:
  // Fails like attach() when a page exists but is not a real one; fd -1
  // when the process has none.
  static Result<StatePage> find_state_page(pid_t pid);

  // Fails with ENOENT when the process has no state page (no agent, nothing
  // attached: lib/attach attaches), EBADF when its uffd was closed or
  // replaced, ESRCH when the page is another process's (inherited over a
  // fork), and with the agent's own errno when it could not get a uffd.
  static Result<AgentLink> attach(pid_t pid);
  AgentLink(AgentLink&& o) noexcept;
  AgentLink& operator=(AgentLink&&) = delete;
  AgentLink(const AgentLink&) = delete;
  ~AgentLink();

  pid_t pid() const { return pid_; }
  int uffd() const { return uffd_.get(); }
  uint64_t token() const { return seen_.token; }
  uint64_t features() const { return seen_.features; }
  std::string route() const;
  // Who made the uffd and page: uapi::kOriginAgent or kOriginAttached.
  uint32_t origin() const { return seen_.origin; }
  // The numbers of the two descriptors in the process.
  int target_uffd_fd() const { return seen_.uffd; }
  int target_state_fd() const { return state_number_; }

  // Tracking epoch: the sequence number of the last scan that re-protected
  // pages, whether or not its image was ever committed.
  uint64_t last_scan() const;
  uint64_t last_scan_ns() const;
  // Called before a scan starts: from now on, marks older than this scan are gone.
  void begin_scan(uint64_t scan, uint64_t now_ns);

  // The process the link was made to still lives (its pid was not reused):
  // for a link made before a freeze.
  bool alive() const;

  // One scanner at a time per process. A holder that died is taken over.
  Result<void> lock();
  void unlock();

 private:
  AgentLink(pid_t pid, UniqueFd pidfd, UniqueFd state_fd, UniqueFd uffd, uapi::AgentState* state,
            const uapi::AgentState& seen, int state_number);
  pid_t pid_;
  int state_number_ = -1;
  UniqueFd pidfd_, state_fd_, uffd_;
  uapi::AgentState* state_ = nullptr;  // shared mapping of the agent's memfd (checked: sealed, one page)
  uapi::AgentState seen_{};            // the agent's fields as read once at attach; the target may rewrite the page
  bool locked_ = false;
};

}  // namespace wpckpt::tracker
