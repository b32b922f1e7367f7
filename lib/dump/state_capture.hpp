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
// `frozen_areas`, if given, are the areas read in this freeze before any
// injection (read_frozen_areas): the injector finds the [vdso] in them and
// the mappings are made of them (an injector's scratch area, unmapped again
// before the end, is not among them). Null: maps is read for each.
Result<state::ProcessState> capture_state(pid_t pid, const fds::CaptureOptions& options,
                                          const std::atomic<bool>* cancel, const ptrace::Freezer& frozen,
                                          const std::vector<tracker::Vma>* smaps_before_freeze, FdCapture& fds,
                                          const std::vector<tracker::Vma>* frozen_areas = nullptr);

}  // namespace wpckpt::dump
