// Threads of the restored process: created by an injected clone3 with
// set_tid (the recorded tid), then, per thread, what only the thread itself
// can set (rseq area, clear_child_tid, its private pending signals), and last
// the registers, XSAVE state and signal mask it had at dump time.
#pragma once

#include <sys/types.h>

#include <vector>

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/regs.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

// Injected into the main thread: one clone3 per non-main thread. Each new
// thread is attached (TRACECLONE) and left in its first stop. Returns the tids
// in the order of state.threads (main thread included, first).
Result<std::vector<pid_t>> create_threads(ptrace::Injector& main_inj, const state::ProcessState& state);

// rseq, sigaltstack, clear_child_tid, name, private pending signals of `thread`, injected in it.
Result<void> register_thread(ptrace::Injector& inj, pid_t pid, const state::ThreadState& thread);
// The process-wide pending signals, injected in the main thread.
Result<void> queue_shared_signals(ptrace::Injector& main_inj, const state::ProcessState& state);

// The registers to give a thread: the recorded ones (see the .cpp for why an
// interrupted system call needs no fix-up here).
ptrace::Registers resume_registers(const state::ThreadState& thread);
// Registers, XSAVE, signal mask: the last step before detaching.
Result<void> set_thread_state(pid_t tid, const state::ThreadState& thread);

}  // namespace wpckpt::restore
