#include "lib/restore/session.hpp"

#include <sys/syscall.h>

#include <string>

namespace wpckpt::restore {

Result<void> restore_session(ptrace::Injector& inj, const state::ProcessState& state, bool shell_job) {
  if (shell_job) return ok();
  const std::string who = "restored process " + std::to_string(state.pid);
  if (state.sid == state.pid) {
    // Not a group leader yet (it is in the restorer's group): setsid succeeds.
    auto r = inj.checked_syscall("setsid", who + " (it was a session leader)", SYS_setsid);
    if (!r) return std::move(r).error().with_hint("its pid is still the number of a process group or session "
                                                  "of processes left from before the dump; they must end first");
    return ok();
  }
  if (state.pgid == state.pid) {
    WPCKPT_TRY(inj.checked_syscall("setpgid", who + " (it was a process-group leader)", SYS_setpgid, 0, 0));
  }
  return ok();
}

}  // namespace wpckpt::restore
