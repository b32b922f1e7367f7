// `wpckpt migrate`: live migration to a page server started with --restore
// on the destination. Pre-dumps to it until the deltas converge (the rule of
// iterate.hpp), the final dump to it (the process is killed here after the
// destination committed it), then asks it to restore that dump and waits
// until the process runs there.
//
// Downtime is measured on this host's clock alone: from the moment the final
// dump froze the process to the moment the destination's answer "it runs"
// arrived. It includes the restore and one network trip back, so it is an
// upper bound of the time the process ran nowhere; no clock of the two hosts
// needs to agree with the other.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>

#include "lib/iterate/iterate.hpp"
#include "lib/net/page_server.hpp"

namespace wpckpt::iterate {

struct MigrateRequest {
  pid_t pid = 0;
  net::Endpoint to;
  std::filesystem::path secret_file;
  int max_iterations = 10;
  double target_downtime_ms = 300;
  double interval_s = 0;
  bool use_events = true;
  int compress_level = 1;
  const std::atomic<bool>* cancel = nullptr;
};

struct MigrateReport {
  IterateReport iterations;
  std::string final_image;     // its name on the destination
  net::RemoteRestore restored;  // pid there, seconds from the request to running
  double downtime_ms = 0;
  // Its parts: from the freeze until the dump returned (frozen, commit, the
  // kill), and from then until the answer (connection, restore there).
  double dump_ms = 0, restore_request_ms = 0;
};

Result<MigrateReport> migrate(const MigrateRequest& request,
                              const std::function<void(const IterationFigures&)>& on_iteration);

}  // namespace wpckpt::iterate
