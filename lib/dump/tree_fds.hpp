// Open file descriptions shared between the processes of a tree (inherited
// by fork: a shell's pipeline, a server's listening socket, a log file that
// every worker appends to): FdState::shared_id, equal wherever kcmp(2) says
// two descriptors of two frozen members are one file, 0 where no other
// member has it. Restore makes each such object once, before the processes
// fork, so that it is shared again (offsets, flags, queued data).
// Pipes need no id: their inode names them (details.pipe_ino).
#pragma once

#include <sys/types.h>

#include <string_view>
#include <utility>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::dump {

// `members`: each frozen member's pid and its captured state. Fails
// (EOPNOTSUPP) for a kind that cannot be shared between processes yet, naming it.
Result<void> assign_shared_ids(std::vector<std::pair<pid_t, state::ProcessState*>>& members, std::string_view verb);

}  // namespace wpckpt::dump
