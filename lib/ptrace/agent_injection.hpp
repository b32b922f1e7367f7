// The agent's userfaultfd and state page (lib/base/uapi/agent_state.hpp),
// made inside a stopped process by injected system calls: what the wpckpt
// agent makes for itself in a cooperating process, made from outside
// (docs/KERNEL.md §2: a uffd acts on the memory of the process that created
// it, so the target must create it). Two users:
//   - attach (lib/attach): a process started without `wpckpt run` gets them
//     at high free descriptor numbers, origin kOriginAttached;
//   - restore (lib/restore/agent_link.hpp): a restored process gets them back
//     at the numbers its dump recorded.
// Both descriptors are close-on-exec. The uffd asks for WP_ASYNC only (any
// EVENT_* would make the process wait for a reader, docs/KERNEL.md §5).
// The routes are tried as the agent tries them (syscall, user-mode-only,
// /dev/userfaultfd), skipping those switched off by WPCKPT_DISABLE_FEATURES;
// the process's own credentials decide which one the kernel grants.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"

namespace wpckpt::ptrace {

struct AgentFdsRequest {
  pid_t pid = 0;              // the process `inj` runs in (written into the page)
  uint32_t origin = 0;        // uapi::kOriginAgent or kOriginAttached
  // Where the descriptors go: an exact number (dup3 over it), or, with -1,
  // the lowest free number at or above `lowest` (F_DUPFD_CLOEXEC; never
  // replaces an open descriptor). If nothing is free up there, wherever the
  // kernel put them.
  int uffd_fd = -1, state_fd = -1;
  int lowest = 0;
  bool with_state_page = true;  // restore of an image that had no page: the uffd only
};

struct InjectedAgentFds {
  int uffd_fd = -1;
  int state_fd = -1;  // -1 without a page
  std::string route;  // uapi::kRoute*
  uint64_t token = 0; // the page's new tracking lifetime
};

// On failure nothing stays open in the process: every descriptor made so far
// is closed again (unless the injection itself broke, e.g. the process died).
Result<InjectedAgentFds> inject_agent_fds(Injector& inj, const AgentFdsRequest& request);

}  // namespace wpckpt::ptrace
