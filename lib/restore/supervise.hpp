// The restored process as wpckpt's child (restore without -d): wpckpt passes
// on the signals a user sends it and ends with the child's exit status.
#pragma once

#include <sys/types.h>

#include <string>

namespace wpckpt::restore {

struct ChildExit {
  int code = 0;     // its exit status, or 128 + the signal that killed it
  std::string how;  // "exited with status 3", "was killed by signal 11 (Segmentation fault)"
  double seconds = 0;  // how long it ran under supervision
};

// Forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT to `pid` until it exits.
ChildExit supervise_child(pid_t pid);

}  // namespace wpckpt::restore
