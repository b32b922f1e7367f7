// The restored process as wpckpt's child (restore without -d): wpckpt passes
// on the signals a user sends it and ends with the child's exit status.
#pragma once

#include <sys/types.h>

namespace wpckpt::restore {

// Forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT to `pid` until it exits; returns
// its exit code, or 128 + the signal that killed it.
int supervise_child(pid_t pid);

}  // namespace wpckpt::restore
