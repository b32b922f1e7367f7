// wpckpt iterate -t PID -D DIR: pre-dumps into DIR/1, DIR/2, ... until they
// converge (or stop converging), then the final dump into the next one.
// --json prints one JSON object per line: one per iteration, then the result.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/cancel.hpp"
#include "cli/commands.hpp"
#include "cli/criu_compat.hpp"
#include "cli/image_io_options.hpp"
#include "cli/iterate_output.hpp"
#include "cli/output.hpp"
#include "lib/fds/fd_handler.hpp"
#include "lib/iterate/iterate.hpp"

namespace wpckpt::cli {
namespace {

struct IterateOptions {
  bool json = false;
  int pid = 0;
  std::string images_dir;
  int max_iterations = 10;
  double target_downtime_ms = 300;
  std::string final_step = "dump";
  bool leave_running = false;
  double interval = 0;
  bool no_events = false;
  bool cross_check = false;
  int compress_level = 1;
  bool buffered_io = false;  // --buffered-io
  fds::CaptureOptions fds;  // what the final dump takes (as `wpckpt dump`'s options)
  CriuOptions criu;         // --network-lock only
};

int run_iterate(const IterateOptions& opts) {
  if (opts.pid <= 0) return report_usage("-t/--tree needs a process id", opts.json);
  if (opts.max_iterations < 1) return report_usage("--max-iterations must be at least 1", opts.json);
  if (!(opts.target_downtime_ms > 0)) return report_usage("--target-downtime-ms must be positive", opts.json);
  if (opts.final_step != "dump" && opts.final_step != "none")
    return report_usage("--final must be 'dump' or 'none'", opts.json);
  if (opts.leave_running && opts.final_step != "dump")
    return report_usage("--leave-running applies to the final dump; it needs --final dump", opts.json);
  const std::atomic<bool>* cancel = install_cancel_handlers();
  iterate::IterateRequest req;
  req.pid = opts.pid;
  req.images_dir = opts.images_dir;
  req.max_iterations = opts.max_iterations;
  req.target_downtime_ms = opts.target_downtime_ms;
  req.final_step = opts.final_step == "dump" ? iterate::FinalStep::Dump : iterate::FinalStep::None;
  req.leave_running = opts.leave_running;
  req.interval_s = opts.interval;
  req.use_events = !opts.no_events;
  req.cross_check = opts.cross_check;
  req.compress_level = opts.compress_level;
  req.direct_io = !opts.buffered_io;
  req.fds = opts.fds;
  req.fds.network_lock = opts.criu.network_lock == "nftables";
  req.cancel = cancel;
  auto report = iterate::iterate(req, [&](const iterate::IterationFigures& f) { print_iteration(f, opts.json); });
  if (!report) return report_error(report.error(), opts.json);
  if (opts.json) {
    std::printf("%s\n", result_json(*report).dump().c_str());
  } else {
    if (!report->events_available) std::printf("no event queue (%s): every pre-dump scanned everything\n",
                                               report->events_reason.c_str());
    std::printf("%s\n", report->stop_reason.c_str());
    if (report->final_dump.ran)
      std::printf("final dump %s: %llu pages, frozen %.1f ms%s\n", report->final_dump.dir.c_str(),
                  static_cast<unsigned long long>(report->final_dump.pages_written), report->final_dump.frozen_ms,
                  report->final_dump.left_running ? ", the process runs on" : "");
  }
  return report->stop_kind == "interrupted" ? kExitFailure : kExitOk;
}

}  // namespace

void add_iterate_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<IterateOptions>();
  CLI::App* sub = app.add_subcommand("iterate", "Pre-dump until the deltas converge, then the final dump");
  sub->add_option("-t,--tree", opts->pid, "Pid of the cooperating process")->required();
  sub->add_option("-D,--images-dir", opts->images_dir, "Directory for DIR/1, DIR/2, ... (created)")->required();
  sub->add_option("--max-iterations", opts->max_iterations, "Pre-dumps at most (default 10)");
  sub->add_option("--target-downtime-ms", opts->target_downtime_ms,
                  "Stop when a dump is predicted to freeze the process less than this (default 300)");
  sub->add_option("--final", opts->final_step, "After the pre-dumps: dump (default) or none");
  sub->add_flag("-R,--leave-running", opts->leave_running, "The final dump resumes the process instead of killing it");
  sub->add_option("--interval", opts->interval, "At least this many seconds between two pre-dumps (default 0)");
  sub->add_flag("--no-events", opts->no_events, "Do not use the event queue: every pre-dump scans everything");
  sub->add_flag("--cross-check", opts->cross_check,
                "Confirm every events-mode pre-dump with a full read-only scan; fail on a page the events missed");
  sub->add_option("--compress-level", opts->compress_level, "zstd level (negative: faster)");
  add_image_io_options(sub, opts->buffered_io);
  sub->add_flag("--tcp-established", opts->fds.tcp_established,
                "The final dump takes established TCP connections (TCP repair; as `dump --tcp-established`)");
  sub->add_flag("--ext-unix-sk", opts->fds.ext_unix_sk,
                "The final dump takes unix datagram sockets connected to a name outside (as `dump --ext-unix-sk`)");
  sub->add_flag("--file-locks", opts->fds.file_locks,
                "Pre-dumps accept file locks and the final dump records them (as `dump --file-locks`)");
  add_ghost_limit_option(sub, opts->fds.ghost_limit);
  add_network_lock_option(sub, opts->criu);
  sub->add_flag("--json", opts->json, "Print one JSON object per iteration and one for the result, one per line");
  sub->callback([opts, &exit_code] { exit_code = run_iterate(*opts); });
}

}  // namespace wpckpt::cli
