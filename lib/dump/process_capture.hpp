// Process-wide state of a frozen process: identity, mm fields, auxv, exe,
// cwd/root, umask, credentials, limits, personality, signal handlers, timers
// (timer_capture.hpp) and the shared pending queue, the XSAVE features and the [vdso] bytes. Read from
// /proc where the kernel shows it, by calls injected into `tid` otherwise.
#pragma once

#include <sys/types.h>

#include <atomic>

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::dump {

// `inj`: prepared on a thread of `pid` frozen by the calling thread; the
// caller cures it. Fills every process-wide field of `out` (threads, mappings
// and fds are not touched). `cancel` (may be null) is polled between the
// injected timer queries and the batch of the others.
Result<void> capture_process(pid_t pid, ptrace::Injector& inj, state::ProcessState& out,
                             const std::atomic<bool>* cancel);

// Small /proc helpers shared by the dump captures.
Result<std::string> read_text(const std::string& path);
Result<std::string> read_link(const std::string& path);

}  // namespace wpckpt::dump
