// State of one frozen thread: what ptrace can read directly (registers,
// XSAVE, mask, private queue, rseq) plus what needs an injected call in that
// thread (sigaltstack, clear_child_tid).
#pragma once

#include <sys/types.h>

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::dump {

// `tid` is frozen by the calling thread (ptrace::Freezer); `pid` its process.
// Registers are kept as the thread was stopped (a thread inside a syscall
// keeps orig_rax and the -ERESTART* rax: restore restarts the call), except
// the rseq fix-up: an IP inside an rseq critical section moves to its abort
// handler, as the kernel would do on return to user mode.
// `inj` is prepared on `tid` (its saved registers and mask are the thread's
// own); the caller cures it.
//
// In two halves, so that several threads run their injected calls at once
// (Injector::begin_batch): begin reads what ptrace reads directly and starts
// the calls; finish (on the same injector, before any other use of it)
// waits for them and fills in their results.
Result<state::ThreadState> begin_thread_capture(pid_t pid, pid_t tid, ptrace::Injector& inj);
Result<void> finish_thread_capture(ptrace::Injector& inj, state::ThreadState& t);

}  // namespace wpckpt::dump
