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

class AgentLink {
 public:
  // Fails with a hint ("start it with `wpckpt run -- CMD`") when the process
  // has no agent, and with the agent's own errno when it could not get a uffd.
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

  // Tracking epoch: the sequence number of the last scan that re-protected
  // pages, whether or not its image was ever committed.
  uint64_t last_scan() const;
  uint64_t last_scan_ns() const;
  // Called before a scan starts: from now on, marks older than this scan are gone.
  void begin_scan(uint64_t scan, uint64_t now_ns);

  // One scanner at a time per process. A holder that died is taken over.
  Result<void> lock();
  void unlock();

 private:
  AgentLink(pid_t pid, UniqueFd pidfd, UniqueFd state_fd, UniqueFd uffd, uapi::AgentState* state,
            const uapi::AgentState& seen);
  pid_t pid_;
  UniqueFd pidfd_, state_fd_, uffd_;
  uapi::AgentState* state_ = nullptr;  // shared mapping of the agent's memfd (checked: sealed, one page)
  uapi::AgentState seen_{};            // the agent's fields as read once at attach; the target may rewrite the page
  bool locked_ = false;
};

}  // namespace wpckpt::tracker
