// What attach and untrack read about a process's descriptor table from /proc.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::attach {

// Where /proc/PID/fd/N points ("" if N is not open).
std::string fd_target(pid_t pid, int fd);
// The open descriptor numbers, ascending.
Result<std::vector<int>> open_fds(pid_t pid);
// The lowest number from which the two highest free numbers below
// min(RLIMIT_NOFILE soft limit, 1024) are taken (attach.hpp); 0 when there
// is no room up there (the kernel then picks).
Result<int> high_free_base(pid_t pid);

}  // namespace wpckpt::attach
