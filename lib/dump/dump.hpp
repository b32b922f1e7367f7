// `wpckpt dump`: freeze a process (attached first if it has no agent,
// lib/attach; a dump that fails later leaves it attached), write the last
// delta of its memory and its complete state (process.json) into a new
// image, then kill it once the image is committed, or let it run on
// (leave_running; tracking stays armed for further iterations).
//
// Whatever fails (or is cancelled) before the commit, the process is
// detached unchanged and no image is left behind.
//
// Timings use CRIU's names, in microseconds (as CRIU's stats-dump):
//   freezing_time  seizing and stopping every thread
//   frozen_time    from the end of the freeze until everything a restore needs
//                  is captured (state and pages handed to the writer); with
//                  leave_running the process is resumed right then, so this
//                  is its downtime; a killed process also waits for the commit
//                  (commit_time) before it dies
//   stopped_time   from the end of the freeze until the process runs again or
//                  is killed: its whole pause on this host, CRIU's frozen_time
//                  (which for a killing dump includes writing the images)
//   memdump_time   scanning and copying pages (capture_memory)
//   memwrite_time  compressing and writing them (while frozen)
//   commit_time    fsync and rename of the image (--json only, not in the manifest)
//   prefetch_time  before the freeze: reading the pages written since the
//                  parent once (page_prefetch.hpp), pages_prefetched of them
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "dump-format/image.hpp"
#include "lib/attach/attach.hpp"
#include "lib/base/progress.hpp"
#include "lib/base/result.hpp"
#include "lib/dump/tree_report.hpp"
#include "lib/checkpoint/memory_capture.hpp"
#include "lib/fds/fd_handler.hpp"
#include "lib/net/remote_sink.hpp"
#include "lib/ptrace/freezer.hpp"

namespace wpckpt::dump {

struct DumpRequest {
  pid_t pid = 0;
  std::filesystem::path images_dir;
  std::optional<std::filesystem::path> prev_images_dir;  // with page_server: relative, resolved by the server
  std::optional<net::PageServerTarget> page_server;      // --page-server: nothing is written locally
  bool leave_running = false;
  fds::CaptureOptions fds;  // --tcp-established, --ext-unix-sk, --ghost-limit
  int compress_level = 1;
  bool direct_io = true;  // image::WriterOptions::direct_io
  ProgressFn progress;
  // Polled between steps (e.g. set by a SIGINT handler): abort, detach, no image.
  const std::atomic<bool>* cancel = nullptr;
  // `wpckpt snapshot`: the process runs on as soon as its state is captured
  // and its memory forked (lib/dump/snapshot_copy.hpp); the image is the
  // instant of the freeze. Implies leave_running.
  bool snapshot = false;
  // How the snapshot keeps the instant (a fork, or the pages read frozen).
  checkpoint::CaptureOptions::SnapshotCopy snapshot_copy = checkpoint::CaptureOptions::SnapshotCopy::Auto;
  // The process is sent SIGKILL after the commit but not waited for: its
  // memory is torn down (tens of ms per GiB) while the caller goes on (a
  // migration asks the destination to restore meanwhile); the caller reaps
  // it through DumpReport::dying. It never runs again either way.
  bool reap_later = false;
};

struct SnapshotFigures {
  bool taken = false;
  double copy_done_seconds = 0;       // from the resume until every page was copied
  uint64_t pages_read_frozen = 0;     // shared memory and MADV_DONTFORK areas, read before the resume
  std::string mechanism;              // "fork-cow", or "read-frozen" (no fork: every page read frozen)
  double reap_stop_seconds = 0;       // the second brief stop that reaps the copy
};

struct DumpReport {
  attach::AttachReport attach;  // how the process is tracked (attached by this dump?)
  uint64_t freezing_time = 0, frozen_time = 0, memdump_time = 0, memwrite_time = 0, commit_time = 0;  // µs
  uint64_t stopped_time = 0;  // µs
  std::chrono::steady_clock::time_point freeze_began;  // the process stopped running here (migration's downtime)
  uint64_t pages_scanned = 0, pages_skipped_parent = 0, pages_written = 0;
  uint64_t pages_prefetched = 0, prefetch_time = 0;  // µs
  checkpoint::CaptureStats capture;
  image::CommitInfo commit;
  size_t threads = 0, mappings = 0, fds = 0;
  bool left_running = false;
  std::vector<std::string> warnings;  // what the image leaves out by design
  SnapshotFigures snapshot;
  std::shared_ptr<ptrace::Freezer> dying;  // reap_later: kill() it to reap the process
  std::vector<TreeMemberReport> processes;  // a tree's members (tree_dump.hpp); empty for one process
};

// The "dump" metadata of the manifest and the core of `--json`.
nlohmann::json report_json(const DumpReport& report);

Result<DumpReport> dump_process(const DumpRequest& request);

}  // namespace wpckpt::dump
