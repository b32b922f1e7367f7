// Timers of the restored process (issue 15 item 4), by calls injected into it
// once its threads exist (a SIGEV_THREAD_ID timer names one) and before they
// get the image's credentials:
//   - interval timers: setitimer with the time that was left at the dump,
//     relative to now, and the interval. The time between the dump and the
//     restore does not count (as for timerfds, lib/fds/timerfd_fd.cpp).
//   - POSIX timers: timer_create with the recorded clock and sigevent, with
//     PR_TIMER_CREATE_RESTORE_IDS on so that each gets its old id (the program
//     holds it), then timer_settime relative, as above. The overrun count of
//     the dump is not restored (no call sets it).
#pragma once

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

// Before anything is created: an image with POSIX timers needs feature
// timer_create_restore_ids.
Result<void> check_timers_restorable(const state::ProcessState& state);

// `inj` runs on the main thread of the restored process.
Result<void> restore_timers(ptrace::Injector& inj, const state::ProcessState& state);

}  // namespace wpckpt::restore
