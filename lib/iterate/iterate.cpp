#include "lib/iterate/iterate.hpp"

#include <time.h>

#include <chrono>
#include <memory>
#include <optional>

#include "lib/attach/attach.hpp"
#include "lib/base/feature.hpp"
#include "lib/base/log.hpp"
#include "lib/checkpoint/freeze_model.hpp"
#include "lib/checkpoint/memory_capture.hpp"
#include "lib/dump/dump.hpp"
#include "lib/dump/pre_dump.hpp"
#include "tracker/events/event_probe.hpp"
#include "tracker/events/event_reader.hpp"

namespace wpckpt::iterate {
namespace {

using Clock = std::chrono::steady_clock;

// A delta at least this large a fraction of the one before did not shrink.
constexpr double kShrinkRatio = 0.9;
// Per-page costs measured on fewer pages than this are noise.
constexpr uint64_t kMinPagesForCost = 1000;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool cancelled(const IterateRequest& r) { return r.cancel != nullptr && r.cancel->load(); }

void sleep_until(Clock::time_point t, const IterateRequest& r) {
  while (!cancelled(r) && Clock::now() < t) {
    timespec ts{0, 20'000'000};
    nanosleep(&ts, nullptr);
  }
}

Result<checkpoint::CaptureStats> pre_dump_once(const IterateRequest& req, const std::filesystem::path& dir,
                                               const std::optional<std::filesystem::path>& parent,
                                               checkpoint::EventTracking* events) {
  dump::PreDumpRequest r;
  r.pid = req.pid;
  r.images_dir = dir;
  r.prev_images_dir = parent;
  r.page_server = req.page_server;
  r.compress_level = req.compress_level;
  r.direct_io = req.direct_io;
  r.file_locks = req.fds.file_locks;
  r.ghost_limit = req.fds.ghost_limit;
  r.events = events;
  WPCKPT_TRY_ASSIGN(dump::PreDumpReport report, dump::pre_dump_process(r));
  return report.capture;
}

}  // namespace

Result<IterateReport> iterate(const IterateRequest& req,
                              const std::function<void(const IterationFigures&)>& on_iteration) {
  if (req.max_iterations < 1) return make_error(EINVAL, "iterate", "(--max-iterations must be at least 1)");
  IterateReport report;
  std::filesystem::path root = req.page_server ? std::filesystem::path("/") : std::filesystem::absolute(req.images_dir);
  if (!req.page_server) {
    std::error_code ec;
    std::filesystem::create_directories(root, ec);
    if (ec) return make_error(ec.value(), "create the images directory", root.string());
  }
  // Local images link to their parent by path; remote ones by the name the
  // server resolves relative to the new image, as CRIU's --prev-images-dir.
  auto image_dir = [&](size_t i) { return root / (req.name_prefix + std::to_string(i)); };
  auto parent_of = [&](const std::filesystem::path& dir) -> std::filesystem::path {
    return req.page_server ? std::filesystem::path("..") / dir.filename() : dir;
  };

  std::unique_ptr<tracker::EventReader> reader;
  checkpoint::EventTracking tracking;
  // A process without tracking is attached before the reader starts: the
  // attach injects userfaultfd(2) and its ioctls into the process, which the
  // reader would take for the process's own userfaultfd and distrust every
  // window after it (full scans for the whole loop).
  if (req.use_events) WPCKPT_TRY(attach::ensure_tracked(req.pid));
  if (!req.use_events) {
    report.events_reason = "switched off";
  } else if (feature_disabled(tracker::kEventQueueFeature)) {
    report.events_reason = std::string("switched off by ") + kDisableFeaturesEnv;
  } else if (auto r = tracker::EventReader::start(req.pid); !r) {
    report.events_reason = r.error().message();
    log::info("pid {}: no event queue, full scans: {}", req.pid, report.events_reason);
  } else {
    reader = std::move(r).value();
    tracking.reader = reader.get();
    tracking.cross_check = req.cross_check;
    report.events_available = true;
  }

  checkpoint::FreezeModel model;
  std::optional<std::filesystem::path> parent;
  uint64_t previous_delta = 0;
  Clock::time_point next_start = Clock::now();
  for (int i = 1;; ++i) {
    sleep_until(next_start, req);
    if (cancelled(req)) {
      report.stop_kind = "interrupted";
      report.stop_reason = "interrupted before iteration " + std::to_string(i);
      break;
    }
    auto t0 = Clock::now();
    next_start = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(req.interval_s));
    std::filesystem::path dir = image_dir(static_cast<size_t>(i));
    WPCKPT_TRY_ASSIGN(checkpoint::CaptureStats s, pre_dump_once(req, dir, parent, reader ? &tracking : nullptr));
    IterationFigures f;
    f.iteration = i;
    f.dir = dir;
    f.incremental = s.incremental;
    f.scan_mode = s.scan_mode;
    f.scan_mode_reason = s.scan_mode_reason;
    f.pages_scanned = s.pages_scanned;
    f.pages_written = s.pages_written;
    f.bytes_raw = s.bytes_raw;
    f.bytes_compressed = s.bytes_compressed;
    f.scan_seconds = s.scan_seconds;
    f.total_seconds = seconds_since(t0);
    f.events_lost = s.events_lost;
    f.cross_checked = s.cross_checked;
    // The rate: from the events when the window saw everything, else what
    // the delta says (pages written since the parent's scan per second).
    if (reader && s.events_lost == 0 && s.event_window_seconds > 0 && i > 1)
      f.dirty_pages_per_s = static_cast<double>(s.event_faults) / s.event_window_seconds;
    else
      f.dirty_pages_per_s = s.dirty_rate_pages_per_s;
    if (s.pages_written >= kMinPagesForCost)
      model.per_page_s = (s.scan_seconds + s.copy_seconds + s.write_seconds) / static_cast<double>(s.pages_written);
    // A dump right now would store what was written since this scan: about
    // the rate times this iteration's length.
    uint64_t expected = static_cast<uint64_t>(f.dirty_pages_per_s * f.total_seconds);
    f.predicted_freeze_ms = model.predict_s(expected) * 1e3;
    report.iterations.push_back(f);
    if (on_iteration) on_iteration(f);
    parent = parent_of(dir);

    if (req.stop_when_converged && i > 1 && f.predicted_freeze_ms <= req.target_downtime_ms) {
      report.stop_kind = "converged";
      report.stop_reason = "converged: a dump now is predicted to freeze the process " +
                           std::to_string(static_cast<int>(f.predicted_freeze_ms)) + " ms (target " +
                           std::to_string(static_cast<int>(req.target_downtime_ms)) + " ms)";
      break;
    }
    if (req.stop_when_converged && i > 2 &&
        static_cast<double>(s.pages_written) >= kShrinkRatio * static_cast<double>(previous_delta)) {
      report.stop_kind = "not_converging";
      report.stop_reason = "not converging: the delta did not shrink (" + std::to_string(previous_delta) + " -> " +
                           std::to_string(s.pages_written) + " pages; the process writes " +
                           std::to_string(static_cast<uint64_t>(f.dirty_pages_per_s)) +
                           " pages/s); a dump now is predicted to freeze it " +
                           std::to_string(static_cast<int>(f.predicted_freeze_ms)) + " ms";
      break;
    }
    if (i >= req.max_iterations) {
      report.stop_kind = "max_iterations";
      report.stop_reason = "stopped after the maximum of " + std::to_string(req.max_iterations) +
                           " iterations without converging; a dump now is predicted to freeze the process " +
                           std::to_string(static_cast<int>(f.predicted_freeze_ms)) + " ms";
      break;
    }
    if (i > 1) previous_delta = s.pages_written;
    else previous_delta = UINT64_MAX;  // the first iteration is whole: no comparison
  }
  reader.reset();  // the final dump freezes the process: no more events to read

  if (req.final_step == FinalStep::Dump && report.stop_kind != "interrupted" && parent) {
    dump::DumpRequest d;
    d.pid = req.pid;
    d.images_dir = image_dir(report.iterations.size() + 1);
    d.prev_images_dir = parent;
    d.page_server = req.page_server;
    d.reap_later = req.reap_final_later;
    d.leave_running = req.leave_running;
    d.compress_level = req.compress_level;
    d.direct_io = req.direct_io;
    d.fds = req.fds;
    d.cancel = req.cancel;
    WPCKPT_TRY_ASSIGN(dump::DumpReport r, dump::dump_process(d));
    report.final_dump.ran = true;
    report.final_dump.dir = d.images_dir;
    report.final_dump.pages_written = r.pages_written;
    report.final_dump.frozen_ms = static_cast<double>(r.frozen_time) / 1e3;
    report.final_dump.freezing_ms = static_cast<double>(r.freezing_time) / 1e3;
    report.final_dump.left_running = r.left_running;
    report.final_dump.freeze_began = r.freeze_began;
    report.final_dump.returned = Clock::now();
    report.final_dump.dying = r.dying;
    report.final_dump.commit_ms = static_cast<double>(r.commit_time) / 1e3;
  }
  return report;
}

}  // namespace wpckpt::iterate
