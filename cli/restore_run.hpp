// The restore verb's work, shared by `wpckpt restore` and `wpckpt
// page-server --restore` (which restores what a migration sent it): the
// options as the CLI has them, the restore, the lazy phase, the report, and
// the supervision of the restored process, whose status it returns.
#pragma once

#include <functional>
#include <string>

#include "cli/criu_compat.hpp"
#include "cli/page_server_options.hpp"
#include "lib/restore/restore.hpp"

namespace wpckpt::cli {

struct RestoreOptions {
  bool json = false, detached = false, lazy = false, allow_other_owner = false;
  bool json_one_line = false;  // the --json document on one line (page-server's JSON Lines)
  bool tcp_established = false, tcp_close = false;
  std::string images_dir, pidfile;
  CriuOptions criu;
  PageServerOptions page_server;  // --page-server: the chain is read from `wpckpt page-server --lazy`
};

struct RestoreHooks {
  // As soon as the process runs (before the lazy phase and the supervision).
  std::function<void(const restore::RestoreReport&)> on_running;
  // The restore failed (before or after the process ran): why.
  std::function<void(const Error&)> on_failure;
};
int run_restore(const RestoreOptions& opts, const RestoreHooks& hooks = {});

}  // namespace wpckpt::cli
