// Tracking for a process started without `wpckpt run`: wpckpt briefly
// freezes it and makes, from outside by injected syscalls, what the agent
// makes from inside (lib/ptrace/agent_injection.hpp): a WP_ASYNC userfaultfd
// and the state page, marked origin "attached". From then on it is tracked
// like a cooperating process; `untrack` removes it again (docs/KERNEL.md §13).
//
// Where the descriptors go: the two highest free numbers below the smaller
// of the process's RLIMIT_NOFILE soft limit and 1024 (so that a program that
// takes the lowest free number, or iterates its descriptors, meets them
// last, and a huge limit does not grow the descriptor table), close-on-exec.
// The dump leaves them out as it leaves the agent's (tracking.uffd_fd,
// tracking.agent_state_fd, tracking.attached); restore re-creates them.
//
// What the process may do to them, and what wpckpt then does (tested in
// tests/e2e/attach_test.cpp):
//   exec           close-on-exec closes both (and the old memory is gone):
//                  the next pre-dump attaches anew and is whole.
//   closes both    (closefrom, a daemon's loop): the same.
//   closes one     the uffd alone: its last close unregistered everything
//                  (docs/KERNEL.md §4); the page left behind is closed and
//                  tracking attached anew, whole. The page alone: as
//                  "none", but the old uffd keeps its areas, which the new
//                  one cannot register (EBUSY): the pre-dumps capture those
//                  whole every time and report them as not tracked.
//   fork           the child inherits both, but they are its parent's
//                  (docs/KERNEL.md §2): a pre-dump of the child closes them
//                  and attaches the child anew; the parent is unaffected.
//   exit           nothing to undo; verbs report that there is no process.
// Each new attach brings a new token, so the parent image of a chain is
// never trusted across it: no written page is missed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "lib/base/result.hpp"

namespace wpckpt::attach {

struct AttachReport {
  // "agent" (cooperating: the wpckpt agent tracks it), "attached" (wpckpt
  // attached to it before), or "new" (attached by this call).
  std::string tracking;
  std::string reason;       // why it was attached now ("" unless "new")
  double frozen_ms = 0;     // how long the process was stopped for it
  int uffd_fd = -1, state_fd = -1;  // the descriptors' numbers in the process
  std::string route;        // how its uffd was made (uapi::kRoute*)
};

// Leaves a process whose tracking works as it is, without stopping it.
// Otherwise (no tracking, or what is left of tracking wpckpt attached)
// attaches as described above. The tracking of an agent that does not work
// is reported as an error, never replaced.
Result<AttachReport> ensure_tracked(pid_t pid);

struct UntrackReport {
  int uffd_fd = -1, state_fd = -1;  // the numbers that were closed (-1: it was not there)
  uint64_t areas_unregistered = 0;
  bool inherited = false;  // the descriptors were a fork parent's: nothing of this process was registered
  double frozen_ms = 0;
};

// Undoes an attach: unregisters every area the uffd tracks (removing the
// protection), then closes both descriptors in the process (a brief
// freeze). Refuses a process the agent tracks and one with nothing attached.
Result<UntrackReport> untrack(pid_t pid);

}  // namespace wpckpt::attach
