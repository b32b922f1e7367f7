// SysV shared memory attached by a process (lib/state/process_state.hpp
// SysvShm): each segment's key, size, owner and mode from
// /proc/sysvipc/shm. The bytes are captured as the mappings' (shared memory,
// copied whole at every iteration).
//
// Refused (EOPNOTSUPP, before anything is stopped): an attachment that is
// no longer the whole segment from its start (partly unmapped): restore
// attaches whole segments only.
#pragma once

#include <sys/types.h>

#include <string_view>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {

// Whether /proc/PID/maps names a SysV segment ("/SYSV<key> (deleted)").
bool is_sysv_area(const tracker::Vma& v);

// The refusal of partial attachments (see above), for `verb`.
Result<void> refuse_partial_sysv_attachments(pid_t pid, std::string_view verb, const std::vector<tracker::Vma>& vmas);

// The segments of `mappings` (a process's, captured), id order.
Result<std::vector<state::SysvShm>> capture_sysv_shm(const std::vector<state::Mapping>& mappings);

}  // namespace wpckpt::dump
