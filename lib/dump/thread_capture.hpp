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
Result<state::ThreadState> capture_thread(pid_t pid, pid_t tid, ptrace::Injector& inj);

}  // namespace wpckpt::dump
