// SIGINT, SIGTERM and SIGHUP set one flag that the long verbs (dump,
// iterate, migrate) poll between steps: they stop cleanly, the process runs
// on, no image is left half-written.
#pragma once

#include <atomic>

namespace wpckpt::cli {

// Installs the handlers; returns the flag they set.
const std::atomic<bool>* install_cancel_handlers();

}  // namespace wpckpt::cli
