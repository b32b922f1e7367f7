// Named fault-injection points (CRIU style) so tests can stop `wpckpt dump`
// at a precise step and kill or interrupt it there. Inactive unless the
// environment has WPCKPT_FAULT_POINT=<name>[:<milliseconds>]: at the point of
// that name the process prints "wpckpt: fault point <name>" to stderr and
// sleeps (forever without a duration). A signal that cancels the dump ends
// the sleep early. Ignored in a privileged run and in a build without test
// hooks (lib/base/privilege.hpp).
#pragma once

#include <sys/types.h>

#include <atomic>

#include "lib/base/result.hpp"

namespace wpckpt::dump {

// Names: "frozen" (all threads stopped, nothing injected yet), "injecting"
// (an injector is prepared on the main thread, between injected calls),
// "captured" (state and pages handed to the writer, before the commit).
void fault_point(const char* name, const std::atomic<bool>* cancel);

// The error a cancelled dump returns (one wording wherever it stops).
Error interrupted_error(pid_t pid);

}  // namespace wpckpt::dump
