// wpckpt snapshot -t PID -D DIR [--prev-images-dir P]: a restorable image of
// a process that keeps running, consistent at the instant of its freeze
// (lib/dump/snapshot_copy.hpp). Frozen only to capture its state, scan (and
// re-arm) its tracking and fork a copy of its memory; the pages are read
// from the copy while it runs on. A small delta is read frozen instead
// (--mechanism, docs/KERNEL.md §17.1).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/cancel.hpp"
#include "cli/commands.hpp"
#include "cli/criu_compat.hpp"
#include "cli/dump_output.hpp"
#include "cli/image_io_options.hpp"
#include "cli/log_file.hpp"
#include "cli/output.hpp"
#include "cli/page_server_options.hpp"
#include "cli/progress.hpp"

namespace wpckpt::cli {
namespace {

struct SnapshotOptions {
  bool json = false, file_locks = false, ext_unix_sk = false;
  int pid = 0;
  std::string images_dir, prev_images_dir, log_file, mechanism = "auto";
  uint64_t ghost_limit = 1 << 20;
  int compress_level = 1;
  bool buffered_io = false;  // --buffered-io
  PageServerOptions page_server;
};

int run_snapshot(const SnapshotOptions& opts) {
  if (opts.pid <= 0) return report_usage("-t/--tree needs a process id", opts.json);
  ProgressBar bar(!opts.json && isatty(STDERR_FILENO));
  dump::DumpRequest req;
  req.pid = opts.pid;
  req.images_dir = opts.images_dir;
  if (auto set = set_image_destination(req, opts.images_dir, opts.prev_images_dir, opts.page_server); !set)
    return report_error(set.error(), opts.json);
  req.snapshot = true;
  using Copy = checkpoint::CaptureOptions::SnapshotCopy;
  req.snapshot_copy = opts.mechanism == "fork-cow" ? Copy::Fork : opts.mechanism == "read-frozen" ? Copy::ReadFrozen : Copy::Auto;
  req.fds.snapshot = true;
  req.fds.ext_unix_sk = opts.ext_unix_sk;
  req.fds.ghost_limit = opts.ghost_limit;
  req.fds.file_locks = opts.file_locks;
  req.compress_level = opts.compress_level;
  req.direct_io = !opts.buffered_io;
  req.progress = bar.callback();
  req.cancel = install_cancel_handlers();
  auto report = dump::dump_process(req);
  bar.finish();
  if (!report) return report_error(report.error(), opts.json);
  const dump::SnapshotFigures& s = report->snapshot;
  if (opts.json) {
    print_json(dump_json(*report, opts.images_dir, opts.prev_images_dir));
  } else {
    std::printf("snapshot %s of process %d, which runs on\n", opts.images_dir.c_str(), opts.pid);
    std::printf("  pages: %llu written since the parent%s, %.1f MiB stored\n",
                static_cast<unsigned long long>(report->pages_written),
                report->capture.incremental ? "" : (" (whole: " + report->capture.whole_reason + ")").c_str(),
                static_cast<double>(report->capture.bytes_compressed) / (1 << 20));
    if (s.mechanism == "read-frozen")
      std::printf("  frozen %.3f ms (the %llu pages to store were read frozen: no copy of the process)\n",
                  static_cast<double>(report->frozen_time) / 1e3, static_cast<unsigned long long>(s.pages_read_frozen));
    else
      std::printf("  frozen %.3f ms; the copy was done %.3f s after the process ran on; a %.3f ms stop reaped the copy\n",
                  static_cast<double>(report->frozen_time) / 1e3, s.copy_done_seconds, s.reap_stop_seconds * 1e3);
    for (const auto& w : report->warnings) std::printf("  note: %s\n", w.c_str());
  }
  return kExitOk;
}

}  // namespace

void add_snapshot_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<SnapshotOptions>();
  CLI::App* sub = app.add_subcommand("snapshot", "A restorable image of a running process at one instant; it runs on");
  sub->add_option("-t,--tree", opts->pid, "Pid of the process (one without the agent is attached first)")->required();
  sub->add_option("-D,--images-dir", opts->images_dir, "Directory of the new image: new, or an empty directory")->required();
  sub->add_option("--prev-images-dir", opts->prev_images_dir,
                  "Parent image (a pre-dump or snapshot of the same process), relative to -D unless absolute");
  sub->add_option("--mechanism", opts->mechanism,
                  "How the instant is kept: fork-cow (a copy-on-write copy), read-frozen (the pages read while the "
                  "process is stopped), auto (read-frozen when the delta is small against the memory; the default)")
      ->check(CLI::IsMember({"auto", "fork-cow", "read-frozen"}));
  sub->add_option("--compress-level", opts->compress_level, "zstd level (negative: faster)");
  add_image_io_options(sub, opts->buffered_io);
  add_ghost_limit_option(sub, opts->ghost_limit);
  sub->add_flag("--file-locks", opts->file_locks, "Record file locks (flock, POSIX, OFD) held on files");
  sub->add_flag("--ext-unix-sk", opts->ext_unix_sk, "Allow unix datagram sockets connected to a name outside the process");
  sub->add_option("-o,--log-file", opts->log_file, "Write the log to FILE (inside -D unless absolute)");
  add_page_server_options(sub, opts->page_server, PageServerRole::Send);
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] {
    exit_code = run_with_new_image_log(opts->images_dir, opts->page_server.enabled, opts->log_file, opts->json,
                                       [&] { return run_snapshot(*opts); });
  });
}

}  // namespace wpckpt::cli
