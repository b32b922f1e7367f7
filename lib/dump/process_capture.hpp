// Process-wide state of a frozen process: identity, mm fields, auxv, exe,
// cwd/root, umask, credentials, limits, personality, signal handlers and the
// shared pending queue, the XSAVE features and the [vdso] bytes. Read from
// /proc where the kernel shows it, by calls injected into `tid` otherwise.
#pragma once

#include <sys/types.h>

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::dump {

// `tid`: a thread of `pid` frozen by the calling thread. Fills every
// process-wide field of `out` (threads, mappings and fds are not touched).
Result<void> capture_process(pid_t pid, pid_t tid, state::ProcessState& out);

// Small /proc helpers shared by the dump captures.
Result<std::string> read_text(const std::string& path);
Result<std::string> read_link(const std::string& path);

}  // namespace wpckpt::dump
