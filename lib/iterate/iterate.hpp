// `wpckpt iterate`: the pre-dump loop that migration and periodic-checkpoint
// scripts otherwise write by hand. Pre-dumps into DIR/1, DIR/2, ... with one
// event reader alive across all of them (so iterations after the second
// scan only what the events name), and stops when
//  - the predicted freeze of a dump now is under the target ("converged"),
//  - the deltas stopped shrinking ("not converging"),
//  - the maximum number of iterations ran, or it was interrupted;
// then runs the final dump into the next numbered directory (or not).
//
// Why a long-lived reader inside iterate (and not a daemon pinning maps in
// bpffs): events-mode scans are exact only if the reader saw every event
// since the parent's scan; the process that runs the scans is the one that
// knows when they happened, and when it dies its programs go with it, so a
// stale reader can never vouch for a later scan. bpffs is not mounted here.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/fds/fd_handler.hpp"
#include "lib/net/remote_sink.hpp"
#include "lib/ptrace/freezer.hpp"

namespace wpckpt::iterate {

enum class FinalStep { Dump, None };

struct IterateRequest {
  pid_t pid = 0;
  std::filesystem::path images_dir;  // DIR: DIR/1, DIR/2, ... are created
  int max_iterations = 10;
  double target_downtime_ms = 300;
  FinalStep final_step = FinalStep::Dump;
  bool leave_running = false;  // the final dump resumes the process
  double interval_s = 0;       // at least this long between the starts of two pre-dumps
  bool use_events = true;      // false: full scans only (also when the event queue is unavailable)
  bool cross_check = false;    // events-mode scans are confirmed by a full read-only scan
  // false: only max_iterations and cancel end the loop (periodic checkpoints, tests).
  bool stop_when_converged = true;
  int compress_level = 1;
  bool direct_io = true;  // image::WriterOptions::direct_io
  const std::atomic<bool>* cancel = nullptr;
  // Images go to a page server (nothing written here) as NAME_PREFIX1,
  // NAME_PREFIX2, ... each linked to the one before; images_dir is unused.
  std::optional<net::PageServerTarget> page_server;
  std::string name_prefix;
  bool reap_final_later = false;  // DumpRequest::reap_later for the final dump
  // The final dump's (--tcp-established, --ext-unix-sk, --network-lock);
  // file_locks and ghost_limit also let the pre-dumps accept what it will take.
  fds::CaptureOptions fds;
};

struct IterationFigures {
  int iteration = 0;
  std::filesystem::path dir;
  bool incremental = false;
  std::string scan_mode, scan_mode_reason;
  uint64_t pages_scanned = 0, pages_written = 0, bytes_raw = 0, bytes_compressed = 0;
  double scan_seconds = 0, total_seconds = 0;
  double dirty_pages_per_s = 0;    // from the events when complete, else from the delta and the time since the parent
  uint64_t events_lost = 0;
  double predicted_freeze_ms = 0;  // of a dump right after this iteration
  bool cross_checked = false;
};

struct FinalFigures {
  bool ran = false;
  std::filesystem::path dir;
  uint64_t pages_written = 0;
  double frozen_ms = 0, freezing_ms = 0;
  bool left_running = false;
  double commit_ms = 0;  // after the freeze: the image made durable (on a page server: sent, checked, renamed)
  std::chrono::steady_clock::time_point freeze_began, returned;
  std::shared_ptr<ptrace::Freezer> dying;  // reap_final_later: the killed process, to reap
};

struct IterateReport {
  std::vector<IterationFigures> iterations;
  std::string stop_reason;
  std::string stop_kind;  // "converged", "not_converging", "max_iterations", "interrupted"
  bool events_available = false;
  std::string events_reason;  // why not, when not
  FinalFigures final_dump;
};

// on_iteration is called after every committed pre-dump (for streaming output).
Result<IterateReport> iterate(const IterateRequest& request,
                              const std::function<void(const IterationFigures&)>& on_iteration);

}  // namespace wpckpt::iterate
