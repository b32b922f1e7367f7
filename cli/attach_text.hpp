// The line pre-dump, dump and watch print when they attached to a process.
#pragma once

#include <sys/types.h>

#include <cstdio>

#include "lib/attach/attach.hpp"

namespace wpckpt::cli {

inline void print_attach_line(const attach::AttachReport& a, pid_t pid) {
  if (a.tracking != "new") return;
  std::printf("  attached to process %d (fds %d and %d, %s uffd), frozen %.2f ms: %s\n", static_cast<int>(pid),
              a.uffd_fd, a.state_fd, a.route.c_str(), a.frozen_ms, a.reason.c_str());
}

}  // namespace wpckpt::cli
