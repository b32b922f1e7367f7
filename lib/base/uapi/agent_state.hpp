// The small ABI between the wpckpt agent (lib/agent, inside the tracked
// process) and the tool: one page in a memfd named kAgentMemfdName that the
// agent creates next to its userfaultfd and keeps open (close-on-exec) for the
// life of the process. The agent writes the page once; the tool takes a copy
// of the memfd with pidfd_getfd, maps it shared and keeps the tracking epoch
// there, so the epoch lives exactly as long as the process and its uffd.
// The target never maps the page: tool writes to it are invisible to tracking.
//
// One writer (make_agent_state + create_agent_state_fd below) serves every
// place that creates the page: the agent in its own process, and wpckpt,
// which makes it inside a process by injected syscalls
// (lib/ptrace/agent_injection.hpp: attach to a process without agent, and
// restore).
// Header-only: the agent links nothing of ours but lib/base/uapi.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

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
  // Appended within version 1 (a page made before reads 0 here: the agent's).
  // Who made the uffd and this page: the agent inside the program, or wpckpt
  // from outside by injected syscalls (attach, or restore of an attached
  // process). `wpckpt untrack` removes only what wpckpt attached.
  uint32_t origin;
};
static_assert(sizeof(AgentState) <= kAgentStateSize);

// How the agent got its userfaultfd (AgentState::route), most capable first.
constexpr const char* kRouteSyscall = "syscall";            // userfaultfd(2)
constexpr const char* kRouteUserModeOnly = "user-mode-only";  // userfaultfd(2) with UFFD_USER_MODE_ONLY
constexpr const char* kRouteDev = "dev";                    // /dev/userfaultfd

// AgentState::origin.
constexpr uint32_t kOriginAgent = 0;     // the wpckpt agent in a cooperating process
constexpr uint32_t kOriginAttached = 1;  // injected by wpckpt into a process without agent
// The routes the agent may try, comma separated (unset: all). `wpckpt run`
// sets it from the feature switches, so that the agent behaves as on a
// kernel without the routes switched off.
constexpr const char* kAgentRoutesEnv = "WPCKPT_AGENT_ROUTES";

inline bool agent_route_allowed(const char* routes, const char* route) {
  if (routes == nullptr) return true;
  size_t len = strlen(route);
  for (const char* p = routes; *p != '\0';) {
    const char* end = strchr(p, ',');
    size_t n = end ? static_cast<size_t>(end - p) : strlen(p);
    if (n == len && strncmp(p, route, len) == 0) return true;
    if (end == nullptr) break;
    p = end + 1;
  }
  return false;
}

// The memfd is sealed against shrinking and growing (and further seal
// changes): the tool maps the page, and a truncation would make its reads
// fault (SIGBUS). The tool refuses a page without these seals.
constexpr unsigned kAgentMemfdFlags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
constexpr int kAgentStateSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

// A fresh token for a new tracking lifetime: random, with a fallback that
// still differs between processes and over time.
inline uint64_t new_agent_token(int32_t pid) {
  uint64_t token = 0;
  if (getrandom(&token, sizeof token, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof token)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    token = static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(ts.tv_sec) << 20);
  }
  return token ^ (static_cast<uint64_t>(static_cast<uint32_t>(pid)) << 44);
}

// The page as the agent's side writes it; the tool's fields stay zero.
inline AgentState make_agent_state(int32_t pid, int32_t uffd, int32_t uffd_errno, uint64_t features,
                                   const char* route, uint32_t origin = kOriginAgent) {
  AgentState state;
  memset(&state, 0, sizeof state);
  state.magic = kAgentMagic;
  state.version = kAgentStateVersion;
  state.pid = pid;
  state.uffd = uffd;
  state.uffd_errno = uffd_errno;
  state.features = features;
  state.token = new_agent_token(pid);
  strncpy(state.route, route, sizeof state.route - 1);
  state.origin = origin;
  return state;
}

// Creates the sealed state memfd holding `state_addr`'s AgentState, in the
// process where `sys` runs system calls: sys(nr, a1, a2, a3, a4) returns the
// kernel's result (-errno on failure). Addresses are in that process. Returns
// the new descriptor, or -errno with nothing left open.
template <typename Syscall>
long create_agent_state_fd(Syscall&& sys, uint64_t name_addr, uint64_t state_addr) {
  long fd = sys(SYS_memfd_create, name_addr, kAgentMemfdFlags, 0, 0);
  if (fd < 0) return fd;
  uint64_t ufd = static_cast<uint64_t>(fd);
  long r = sys(SYS_ftruncate, ufd, kAgentStateSize, 0, 0);
  if (r >= 0) r = sys(SYS_pwrite64, ufd, state_addr, sizeof(AgentState), 0);
  if (r >= 0 && r != static_cast<long>(sizeof(AgentState))) r = -EIO;
  if (r >= 0) r = sys(SYS_fcntl, ufd, F_ADD_SEALS, static_cast<uint64_t>(kAgentStateSeals), 0);
  if (r < 0) {
    sys(SYS_close, ufd, 0, 0, 0);
    return r;
  }
  return fd;
}

}  // namespace wpckpt::uapi
