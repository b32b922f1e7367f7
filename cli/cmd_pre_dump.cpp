// wpckpt pre-dump: write a delta of what the process wrote since the parent
// image (or everything, the first time); the process keeps running.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/attach_text.hpp"
#include "cli/commands.hpp"
#include "cli/criu_compat.hpp"
#include "cli/dump_output.hpp"
#include "cli/image_io_options.hpp"
#include "cli/image_paths.hpp"
#include "cli/log_file.hpp"
#include "cli/output.hpp"
#include "cli/page_server_options.hpp"
#include "cli/progress.hpp"
#include "lib/dump/attach_json.hpp"
#include "lib/dump/pre_dump.hpp"

namespace wpckpt::cli {
namespace {

struct PreDumpOptions {
  bool json = false, leave_running = false;
  int pid = 0;
  std::string images_dir, prev_images_dir;
  PageServerOptions page_server;
  int compress_level = 1;
  bool buffered_io = false;  // --buffered-io
  uint64_t ghost_limit = 1 << 20;
  bool file_locks = false;
  CriuOptions criu;
};

nlohmann::json stats_json(const checkpoint::CaptureStats& s, const attach::AttachReport& attach,
                          const PreDumpOptions& opts, double total_seconds) {
  nlohmann::json untracked = nlohmann::json::array();
  for (const checkpoint::UntrackedArea& a : s.untracked) {
    untracked.push_back({{"start", a.start}, {"end", a.end}, {"path", a.path}, {"handling", a.handling},
                         {"reason", a.reason}});
    if (!a.pids.empty()) untracked.back()["pids"] = a.pids;
  }
  return {{"untracked_areas", untracked},
          {"attach", dump::attach_json(attach)},
          {"images_dir", opts.images_dir},
          {"parent", opts.prev_images_dir.empty() ? nlohmann::json(nullptr) : nlohmann::json(opts.prev_images_dir)},
          {"pages_scanned", s.pages_scanned},
          {"pages_written", s.pages_written},
          {"pages_stored", s.pages_stored},
          {"pages_zero", s.pages_zero},
          {"pages_skipped_parent", s.pages_skipped_parent},
          {"bytes_raw", s.bytes_raw},
          {"bytes_compressed", s.bytes_compressed},
          {"scan_seconds", s.scan_seconds},
          {"copy_seconds", s.copy_seconds},
          {"write_seconds", s.write_seconds},
          {"total_seconds", total_seconds},
          {"dirty_rate_pages_per_s", s.dirty_rate_pages_per_s},
          {"epoch", s.epoch},
          {"incremental", s.incremental},
          {"whole_reason", s.whole_reason},
          {"scan_mode", s.scan_mode},
          {"scan_mode_reason", s.scan_mode_reason},
          {"areas", s.areas},
          {"areas_registered", s.areas_registered},
          {"areas_untracked", s.areas_untracked},
          {"pages_unreadable", s.pages_unreadable}};
}

void print_text(const checkpoint::CaptureStats& s, const attach::AttachReport& attach, const PreDumpOptions& opts,
                double total_seconds) {
  std::printf("pre-dump %s: %s\n", opts.images_dir.c_str(),
              s.incremental ? ("delta against " + opts.prev_images_dir).c_str()
                            : ("every area whole (" + s.whole_reason + ")").c_str());
  print_attach_line(attach, opts.pid);
  std::printf("  pages: %llu scanned, %llu written, %llu stored, %llu zero, %llu left to the parent\n",
              static_cast<unsigned long long>(s.pages_scanned), static_cast<unsigned long long>(s.pages_written),
              static_cast<unsigned long long>(s.pages_stored), static_cast<unsigned long long>(s.pages_zero),
              static_cast<unsigned long long>(s.pages_skipped_parent));
  std::printf("  bytes: %.1f MiB raw, %.1f MiB compressed\n", static_cast<double>(s.bytes_raw) / (1 << 20),
              static_cast<double>(s.bytes_compressed) / (1 << 20));
  std::printf("  time: %.3f s (scan %.3f, copy %.3f, write %.3f)\n", total_seconds, s.scan_seconds, s.copy_seconds,
              s.write_seconds);
  if (s.incremental) std::printf("  dirty rate: %.0f pages/s since the parent\n", s.dirty_rate_pages_per_s);
  for (const checkpoint::UntrackedArea& a : s.untracked) {
    std::string where;
    for (int pid : a.pids) where += (where.empty() ? " (process " : ", ") + std::to_string(pid);
    if (!where.empty()) where += ")";
    std::printf("  not tracked: %#llx-%#llx %s: %s%s\n", static_cast<unsigned long long>(a.start),
                static_cast<unsigned long long>(a.end), a.path.empty() ? "(anonymous)" : a.path.c_str(),
                a.reason.c_str(), where.c_str());
  }
}

int pre_dump(const PreDumpOptions& opts) {
  if (opts.pid <= 0) return report_usage("-t/--tree needs a process id", opts.json);
  ProgressBar bar(!opts.json && isatty(STDERR_FILENO));
  dump::PreDumpRequest req;
  req.pid = opts.pid;
  req.images_dir = opts.images_dir;
  if (auto set = set_image_destination(req, opts.images_dir, opts.prev_images_dir, opts.page_server); !set)
    return report_error(set.error(), opts.json);
  req.compress_level = opts.compress_level;
  req.direct_io = !opts.buffered_io;
  req.ghost_limit = opts.ghost_limit;
  req.file_locks = opts.file_locks;
  req.progress = bar.callback();
  auto report = dump::pre_dump_process(req);
  bar.finish();
  if (!report) return report_error(report.error(), opts.json);
  if (opts.json) {
    nlohmann::json doc = stats_json(report->capture, report->attach, opts, report->seconds);
    if (!report->processes.empty()) doc["processes"] = tree_json(report->processes);
    print_json(doc);
  } else {
    print_text(report->capture, report->attach, opts, report->seconds);
    print_tree_lines(report->processes);
  }
  if (opts.criu.display_stats) {
    // A pre-dump never freezes the process: CRIU's freezing and frozen times are 0.
    const checkpoint::CaptureStats& stats = report->capture;
    auto us = [](double s) { return static_cast<uint64_t>(s * 1e6); };
    display_dump_stats({0, 0, us(stats.scan_seconds + stats.copy_seconds), us(stats.write_seconds),
                        stats.pages_scanned, stats.pages_skipped_parent, stats.pages_written},
                       opts.json);
  }
  return kExitOk;
}

}  // namespace

void add_pre_dump_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<PreDumpOptions>();
  CLI::App* sub = app.add_subcommand("pre-dump", "Write a delta of what the process wrote; it keeps running");
  sub->add_option("-t,--tree", opts->pid, "Pid of the process (one without the agent is attached first)")->required();
  sub->add_option("-D,--images-dir", opts->images_dir, "Directory of the new image: new, or an empty directory")->required();
  sub->add_option("--prev-images-dir", opts->prev_images_dir, "Parent image, relative to -D unless absolute (default: none, a full first iteration)");
  sub->add_option("--compress-level", opts->compress_level, "zstd level (negative: faster)");
  add_image_io_options(sub, opts->buffered_io);
  add_ghost_limit_option(sub, opts->ghost_limit);
  sub->add_flag("--file-locks", opts->file_locks, "Accept file locks on files (the dump records them; as CRIU)");
  sub->add_flag("-R,--leave-running", opts->leave_running,
                "Accepted for CRIU scripts: a pre-dump always leaves the process running");
  // A pre-dump saves memory only: sockets are checked and saved by the dump,
  // under its own options.
  add_ignored_criu_flag(sub, "--tcp-established",
                        "a pre-dump saves memory only; the dump's --tcp-established takes the connections");
  add_ignored_criu_flag(sub, "--ext-unix-sk", "a pre-dump saves memory only; the dump's --ext-unix-sk takes the sockets");
  add_criu_options(sub, opts->criu, "Accepted for CRIU scripts: a pre-dump does not capture terminals", true);
  add_page_server_options(sub, opts->page_server, PageServerRole::Send);
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] {
    exit_code = run_with_new_image_log(opts->images_dir, opts->page_server.enabled, opts->criu.log_file, opts->json,
                                       [&] { return pre_dump(*opts); });
  });
}

}  // namespace wpckpt::cli
