// POSIX record locks (fcntl F_SETLK, lockf) of the restored process
// (lib/fds/file_locks.hpp): they belong to the process, not to an open file
// description, so they are taken inside it by injected fcntl calls once its
// descriptors are final: closing any descriptor of the file, as the restore
// does with its helpers, would drop them. Never waits: a lock another
// process holds now fails the restore, naming the file and the range.
#pragma once

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

Result<void> restore_posix_locks(ptrace::Injector& inj, const state::ProcessState& st);

}  // namespace wpckpt::restore
