// Everything a restore needs of one frozen process besides its pages:
// descriptors first (an unsupported one fails before any injection), then
// every thread, the process-wide state, and the mappings. Shared by the
// dump of one process (dump.cpp) and of a tree (tree_dump.cpp).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/dump/fd_capture.hpp"
#include "lib/fds/fd_handler.hpp"
#include "lib/ptrace/freezer.hpp"
#include "lib/state/process_state.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {

// `fds` keeps what the descriptors add (extra files, warnings, sockets in
// repair mode); `smaps_before_freeze`, read while the process ran, spares
// a second walk of unchanged areas. `cancel` is polled between steps.
// `areas_read`, if given, gets the areas as read once every injector is
// cured: what the memory scan of this freeze would read again.
Result<state::ProcessState> capture_state(pid_t pid, const fds::CaptureOptions& options,
                                          const std::atomic<bool>* cancel, const ptrace::Freezer& frozen,
                                          const std::vector<tracker::Vma>* smaps_before_freeze, FdCapture& fds,
                                          std::vector<tracker::Vma>* areas_read = nullptr);

}  // namespace wpckpt::dump
