// The small ABI between the wpckpt agent (lib/agent, inside the tracked
// process) and the tool: one page in a memfd named kAgentMemfdName that the
// agent creates next to its userfaultfd and keeps open (close-on-exec) for the
// life of the process. The agent writes the page once; the tool takes a copy
// of the memfd with pidfd_getfd, maps it shared and keeps the tracking epoch
// there, so the epoch lives exactly as long as the process and its uffd.
// The target never maps the page: tool writes to it are invisible to tracking.
#pragma once

#include <cstdint>

namespace wpckpt::uapi {

// memfd_create name; /proc/PID/fd shows "/memfd:wpckpt-agent (deleted)".
constexpr const char* kAgentMemfdName = "wpckpt-agent";
constexpr const char* kAgentMemfdLink = "/memfd:wpckpt-agent (deleted)";
constexpr uint64_t kAgentMagic = 0x47415450434b5057ull;  // "WPCKPTAG" little-endian
// Version history: 1 = first layout.
constexpr uint32_t kAgentStateVersion = 1;
constexpr uint64_t kAgentStateSize = 4096;

struct AgentState {
  // Written by the agent when it creates (or, in a fork child, re-creates) its uffd.
  uint64_t magic;
  uint32_t version;
  int32_t pid;             // the process that owns this state (a fork child makes its own)
  int32_t uffd;            // fd number of the uffd in that process, -1 if creation failed
  int32_t uffd_errno;      // why creation failed (0 on success)
  uint64_t features;       // UFFDIO_API features requested and accepted
  uint64_t token;          // random, new for every uffd: names one tracking lifetime
  char route[16];          // "syscall", "user-mode-only", "dev" — how the uffd was made
  // Written by the tool only (the agent leaves them zero).
  uint64_t lock_owner;     // pid of the tool instance scanning right now, 0 = free
  uint64_t last_scan;      // sequence number of the last scan that re-protected pages
  uint64_t last_scan_ns;   // CLOCK_REALTIME of that scan
};
static_assert(sizeof(AgentState) <= kAgentStateSize);

}  // namespace wpckpt::uapi
