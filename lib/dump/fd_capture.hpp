// The file descriptors of a frozen process as state::FdState records, with
// what restore needs to re-create each kind: regular files (path, flags,
// position, identity; deleted or replaced files detected), directories,
// /dev/null, ttys/ptys, other character devices, pipes and FIFOs (with their
// unread data, read without consuming it), eventfd, epoll (its targets),
// signalfd, timerfd, memfd (contents as an extra image file).
//
// The agent's userfaultfd and state memfd are not listed: their numbers go
// to `tracking` (restore re-creates them). Sockets: inet (TCP, UDP) and unix
// ones (inet_socket_fd.cpp, unix_socket_fd.cpp). Any other kind fails the
// capture with an error naming the fd and its kind. What each kind
// records is its handler's (lib/fds/fd_handler.hpp).
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/fds/fd_handler.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::dump {

struct FdCapture {
  std::vector<state::FdState> fds;  // fd order
  // Extra image files (memfd contents): name -> bytes.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
  nlohmann::json tracking = nlohmann::json::object();  // "uffd_fd", "agent_state_fd"
  std::vector<std::string> warnings;  // left out by design, said in the dump's output
  // Declared before `repaired`: destroyed after it, so a failed dump takes
  // the sockets out of repair mode before their packets flow again.
  netlock::NetworkLock network_lock{0};  // (fds::CaptureSoFar)
  fds::RepairedSockets repaired;      // TCP sockets in repair mode (fds::CaptureSoFar)
};

// FdState.object_id: equal for descriptors sharing one open file description
// (dup, fork; found with kcmp). Pipes also carry details.pipe_ino, equal for
// both ends of one pipe, and details.end ("read" or "write").
Result<FdCapture> capture_fds(pid_t pid, const fds::CaptureOptions& options = {});

}  // namespace wpckpt::dump
