// The session and process group of the restored process (issue 15 item 1).
// The new process starts in wpckpt restore's session and group; then:
//   - it was a session leader (sid == pid): setsid(), so that it leads a
//     new session (and its group) with its own pid, as before the dump. It
//     has no controlling terminal afterwards (none is restored).
//   - it was a process-group leader only (pgid == pid): setpgid(0, 0), a
//     group of its own, inside the restorer's session.
//   - its group or session was another process's (a shell's job, a
//     service manager's session): it joins the restorer's group and session.
//     The other process is not part of the image (trees are refused at dump,
//     lib/dump/unsupported_state.hpp).
//   - with -j/--shell-job, always the last: a job of the shell that runs
//     wpckpt restore must be in its foreground group to use the terminal (in
//     a group of its own it would be stopped by SIGTTIN).
// Done by syscalls injected into the new process before it runs.
#pragma once

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

Result<void> restore_session(ptrace::Injector& inj, const state::ProcessState& state, bool shell_job);

}  // namespace wpckpt::restore
