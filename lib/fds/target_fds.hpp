// Descriptors of the dumped process, copied into wpckpt with pidfd_getfd (the
// ptrace-attach access a dump has anyway): the same open file, so what is
// read from the copy (socket options, a pipe's unread bytes) is the target's.
#pragma once

#include <sys/types.h>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::fds {

// One pidfd per process, opened at the first copy and reused for the rest.
class TargetFds {
 public:
  explicit TargetFds(pid_t pid) : pid_(pid) {}
  // A copy of the target's descriptor `fd`; the error names both.
  Result<UniqueFd> copy(int fd);

 private:
  pid_t pid_;
  UniqueFd pidfd_;
};

}  // namespace wpckpt::fds
