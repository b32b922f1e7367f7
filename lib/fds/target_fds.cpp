#include "lib/fds/target_fds.hpp"

#include <fmt/core.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/base/uapi/process.hpp"

namespace wpckpt::fds {

Result<UniqueFd> TargetFds::copy(int fd) {
  if (!pidfd_) {
    pidfd_.reset(static_cast<int>(::syscall(uapi::kNrPidfdOpen, pid_, 0)));
    if (!pidfd_) return errno_error("pidfd_open", "process " + std::to_string(pid_));
  }
  UniqueFd mine(static_cast<int>(::syscall(uapi::kNrPidfdGetfd, pidfd_.get(), fd, 0)));
  if (!mine) return errno_error("pidfd_getfd", fmt::format("fd {} of process {}", fd, pid_));
  return mine;
}

}  // namespace wpckpt::fds
