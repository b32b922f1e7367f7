// Timers of a frozen process: armed interval timers (setitimer/alarm) and
// POSIX timers (timer_create). Only the process itself can read their
// values, so both are read by calls injected while it is frozen; the list of
// POSIX timers and how each notifies come from /proc/PID/timers.
#pragma once

#include <sys/time.h>
#include <sys/types.h>

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::ptrace {
class Injector;
}

namespace wpckpt::dump {

// The interval timers are read by getitimer(ITIMER_REAL, _VIRTUAL, _PROF)
// in the caller's batch of injected queries (kItimerKinds, in this order);
// add_itimer() takes each value read.
constexpr int kItimerKinds[] = {0, 1, 2};  // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
void add_itimer(int which, const struct itimerval& value, state::ProcessState& out);

// `inj` runs on a frozen thread of `pid`. Fills out.posix_timers (values
// read by calls injected one by one: a process has few, most have none).
Result<void> capture_posix_timers(ptrace::Injector& inj, pid_t pid, state::ProcessState& out);

// The timers /proc/PID/timers lists (id, signal, sigev_value, notify, clock),
// values not filled. Exposed for the parser's tests.
Result<std::vector<state::PosixTimer>> parse_proc_timers(const std::string& text, const std::string& where);

}  // namespace wpckpt::dump
