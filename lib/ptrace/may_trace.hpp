// Whether the user behind this wpckpt may checkpoint a process, decided
// before anything is stopped, read or copied from it.
//
// The kernel's own rule (ptrace_may_access with real credentials) is: the
// caller's real uid equals the target's real, effective and saved uids and
// its real gid the target's three gids, and the target is dumpable; or the
// caller has CAP_SYS_PTRACE. A copy of wpckpt with file capabilities (or a
// setuid one) has CAP_SYS_PTRACE that its user does not: the kernel would
// let that user stop and read any process. So capabilities count here only
// when the exec did not raise them (lib/base/privilege.hpp); otherwise the
// real user must own the target as the rule above says.
#pragma once

#include <sys/types.h>

#include "lib/base/result.hpp"

namespace wpckpt::ptrace {

// EPERM naming the target's and the caller's ids, or ESRCH, with a hint.
Result<void> check_may_trace(pid_t pid);

}  // namespace wpckpt::ptrace
