// wpckpt dump: freeze the process, write the last delta and its full state;
// kill it once the image is committed, or resume it with --leave-running
// (by default as soon as a copy-on-write copy holds its memory, as `wpckpt
// snapshot` does).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/attach_text.hpp"
#include "cli/cancel.hpp"
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
#include "lib/dump/dump.hpp"
#include "lib/dump/pre_copy_dump.hpp"

namespace wpckpt::cli {
namespace {

struct DumpOptions {
  bool json = false, leave_running = false;
  bool tcp_established = false, ext_unix_sk = false;
  uint64_t ghost_limit = 1 << 20;
  bool file_locks = false;
  bool pre_copy = false, no_pre_copy = false;
  bool no_cow_copy = false;
  int pid = 0;
  std::string images_dir, prev_images_dir;
  PageServerOptions page_server;
  int compress_level = 1;
  bool buffered_io = false;  // --buffered-io
  CriuOptions criu;
};

// SIGINT/SIGTERM/SIGHUP during a dump: stop at the next step, detach, leave
// no image. Installed without SA_RESTART so a blocking wait returns early.
void print_text(const dump::DumpReport& r, const DumpOptions& opts, bool pre_copied) {
  std::printf("dump %s of process %d: %s\n", opts.images_dir.c_str(), opts.pid,
              r.left_running ? "the process runs on" : "the process was killed after the commit");
  print_attach_line(r.attach, opts.pid);
  std::printf("  state: %zu threads, %zu mappings, %zu file descriptors\n", r.threads, r.mappings, r.fds);
  std::printf(pre_copied ? "  pages: %llu scanned, %llu written while frozen, %llu from the pre-copy%s\n"
                            : "  pages: %llu scanned, %llu written, %llu left to the parent%s\n",
              static_cast<unsigned long long>(r.pages_scanned), static_cast<unsigned long long>(r.pages_written),
              static_cast<unsigned long long>(r.pages_skipped_parent),
              r.capture.incremental ? "" : (" (whole: " + r.capture.whole_reason + ")").c_str());
  std::printf("  time (ms): freezing %.3f, frozen %.3f (memdump %.3f, memwrite %.3f), commit %.3f; stopped %.3f "
              "until it %s\n",
              r.freezing_time / 1e3, r.frozen_time / 1e3, r.memdump_time / 1e3, r.memwrite_time / 1e3,
              r.commit_time / 1e3, r.stopped_time / 1e3, r.left_running ? "ran on" : "was killed");
  if (r.snapshot.mechanism == "fork-cow")
    std::printf("  the process ran on after the freeze; its memory was read from a copy-on-write copy, done %.3f s "
                "later\n",
                r.snapshot.copy_done_seconds);
  print_tree_lines(r.processes);
  for (const auto& w : r.warnings) std::printf("  note: %s\n", w.c_str());
}

int run_dump(const DumpOptions& opts) {
  if (opts.pid <= 0) return report_usage("-t/--tree needs a process id", opts.json);
  const std::atomic<bool>* cancel = install_cancel_handlers();
  ProgressBar bar(!opts.json && isatty(STDERR_FILENO));
  dump::DumpRequest req;
  req.pid = opts.pid;
  req.images_dir = opts.images_dir;
  if (auto set = set_image_destination(req, opts.images_dir, opts.prev_images_dir, opts.page_server); !set)
    return report_error(set.error(), opts.json);
  req.leave_running = opts.leave_running;
  // -R: frozen only until a copy-on-write copy holds the memory (as `wpckpt
  // snapshot`), unless the user wants CRIU's whole-dump freeze, or TCP
  // connections are dumped (their repair mode ends when the process runs).
  req.snapshot = opts.leave_running && !opts.no_cow_copy && !opts.tcp_established;
  req.fds.tcp_established = opts.tcp_established;
  req.fds.ext_unix_sk = opts.ext_unix_sk;
  req.fds.ghost_limit = opts.ghost_limit;
  req.fds.file_locks = opts.file_locks;
  req.fds.network_lock = opts.criu.network_lock == "nftables";
  req.compress_level = opts.compress_level;
  req.direct_io = !opts.buffered_io;
  req.progress = bar.callback();
  req.cancel = cancel;
  // Asked for, or by default for a large process dumped and killed at once
  // (dump::pre_copy_by_default); never with --no-pre-copy.
  const bool automatic = !opts.pre_copy && !opts.no_pre_copy && dump::pre_copy_by_default(req);
  const bool pre_copied = opts.pre_copy || automatic;
  dump::PreCopyStats pre_copy;
  auto report = pre_copied ? dump::dump_with_pre_copy(req, pre_copy) : dump::dump_process(req);
  bar.finish();
  if (!report) return report_error(report.error(), opts.json);
  if (opts.json) {
    nlohmann::json doc = dump_json(*report, opts.images_dir, opts.prev_images_dir);
    if (pre_copied)
      doc["pre_copy"] = {{"seconds", pre_copy.pre_copy_seconds},
                         {"pages_written", pre_copy.pre_copy_pages},
                         {"rounds", pre_copy.pre_copy_rounds},
                         {"merge_seconds", pre_copy.merge_seconds},
                         {"merged", pre_copy.merged},
                         {"automatic", automatic}};
    print_json(doc);
  } else {
    print_text(*report, opts, pre_copied);
    if (pre_copied)
      std::printf("  pre-copy%s: %llu pages copied in %zu round%s, %.3f s, while the process ran; merged into one "
                  "image in %.3f s\n",
                  automatic ? " (default for a process of 64 MiB or more; --no-pre-copy freezes it for the whole dump)"
                            : "",
                  static_cast<unsigned long long>(pre_copy.pre_copy_pages), pre_copy.pre_copy_rounds,
                  pre_copy.pre_copy_rounds == 1 ? "" : "s", pre_copy.pre_copy_seconds, pre_copy.merge_seconds);
  }
  if (opts.criu.display_stats) {
    const dump::DumpReport& r = *report;
    // CRIU's frozen_time is the whole stop, the write of a killed process's images included.
    display_dump_stats({r.freezing_time, r.stopped_time, r.memdump_time, r.memwrite_time, r.pages_scanned,
                        r.pages_skipped_parent, r.pages_written},
                       opts.json);
  }
  return kExitOk;
}

}  // namespace

void add_dump_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<DumpOptions>();
  CLI::App* sub = app.add_subcommand("dump", "Freeze the process, write the last delta and its full state");
  sub->add_option("-t,--tree", opts->pid, "Pid of the process (one without the agent is attached first)")->required();
  sub->add_option("-D,--images-dir", opts->images_dir, "Directory of the new image: new, or an empty directory")->required();
  sub->add_option("--prev-images-dir", opts->prev_images_dir, "Parent image (a pre-dump of the same process), relative to -D unless absolute");
  sub->add_flag("-R,--leave-running", opts->leave_running, "Resume the process after the dump instead of killing it");
  sub->add_flag("--no-cow-copy", opts->no_cow_copy,
                "With -R: keep the process frozen for the whole dump (as CRIU) instead of letting it run once a "
                "copy-on-write copy holds its memory");
  sub->add_option("--compress-level", opts->compress_level, "zstd level (negative: faster)");
  add_image_io_options(sub, opts->buffered_io);
  add_ghost_limit_option(sub, opts->ghost_limit);
  auto* pre = sub->add_flag("--pre-copy", opts->pre_copy,
                            "Copy the memory while the process runs first, then freeze it only for what it wrote "
                            "meanwhile (one image at -D; what it wrote meanwhile is compressed twice). The default for "
                            "a process of 64 MiB or more dumped and killed at once");
  sub->add_flag("--no-pre-copy", opts->no_pre_copy,
                "Freeze the process for the whole dump, as CRIU does, even when it is large")
      ->excludes(pre);
  sub->add_flag("--file-locks", opts->file_locks, "Dump file locks (flock, POSIX, OFD) held on files; restore takes them again");
  sub->add_flag("--tcp-established", opts->tcp_established, "Dump established TCP connections (TCP repair; needs CAP_NET_ADMIN)");
  sub->add_flag("--ext-unix-sk", opts->ext_unix_sk, "Allow unix datagram sockets connected to a name outside the process (reconnected by name on restore)");
  add_criu_options(sub, opts->criu,
                   "The process is a shell job: a terminal on its fd 0-2 is external (always so; see the man page)",
                   true);
  add_network_lock_option(sub, opts->criu);
  add_page_server_options(sub, opts->page_server, PageServerRole::Send);
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] {
    exit_code = run_with_new_image_log(opts->images_dir, opts->page_server.enabled, opts->criu.log_file, opts->json,
                                       [&] { return run_dump(*opts); });
  });
}

}  // namespace wpckpt::cli
