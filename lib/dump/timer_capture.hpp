// Timers of a frozen process: armed interval timers (setitimer/alarm) and
// POSIX timers (timer_create). Only the process itself can read their
// values, so both are read by calls injected while it is frozen; the list of
// POSIX timers and how each notifies come from /proc/PID/timers.
#pragma once

#include <sys/types.h>

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::ptrace {
class Injector;
}

namespace wpckpt::dump {

// `inj` runs on a frozen thread of `pid`. Fills out.itimers and out.posix_timers.
Result<void> capture_timers(ptrace::Injector& inj, pid_t pid, state::ProcessState& out);

// The timers /proc/PID/timers lists (id, signal, sigev_value, notify, clock),
// values not filled. Exposed for the parser's tests.
Result<std::vector<state::PosixTimer>> parse_proc_timers(const std::string& text, const std::string& where);

}  // namespace wpckpt::dump
