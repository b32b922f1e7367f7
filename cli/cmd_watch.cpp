// wpckpt watch -t PID: the live write behaviour of a tracked process from
// the event queue, without a scan: a view that redraws in place on a
// terminal, one line per interval otherwise, one JSON object per line with --json.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/attach_text.hpp"
#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "lib/attach/attach.hpp"
#include "lib/base/log.hpp"
#include "lib/checkpoint/write_watch.hpp"
#include "lib/dump/attach_json.hpp"
#include "lib/probe/features.hpp"

namespace wpckpt::cli {
namespace {

struct WatchOptions {
  bool json = false;
  int pid = 0;
  double interval = 1.0;
  uint64_t count = 0;  // 0: until interrupted
};

// Write faults happen only on write-protected pages, which a pre-dump arms;
// watch itself never arms (pages re-protected without being saved would be
// missing from the next pre-dump).
constexpr const char* kNotArmed =
    "not armed yet: no pre-dump has write-protected the process, so its writes are not seen; run `wpckpt pre-dump "
    "-t PID -D DIR` once (or `wpckpt iterate`)";

std::atomic<bool> g_stop{false};
void on_stop(int) { g_stop.store(true); }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

// Sleeps `seconds` unless interrupted by a stop signal.
void sleep_interval(double seconds) {
  timespec ts{static_cast<time_t>(seconds), static_cast<long>((seconds - static_cast<double>(static_cast<time_t>(seconds))) * 1e9)};
  while (!g_stop.load() && nanosleep(&ts, &ts) != 0) {
  }
}

nlohmann::json sample_json(const checkpoint::WatchSample& s, int pid, const attach::AttachReport& attach) {
  nlohmann::json busiest = nlohmann::json::array();
  for (const checkpoint::AreaActivity& a : s.busiest)
    busiest.push_back({{"start", a.start}, {"end", a.end}, {"name", a.name}, {"pages", a.pages}});
  return {{"pid", pid},
          {"interval_s", s.interval_s},
          {"dirty_pages_per_s", s.dirty_pages_per_s},
          {"pages_first_written", s.pages_first_written},
          {"pages_dirty_since_parent", s.pages_dirty_since_parent},
          {"write_faults", s.write_faults},
          {"area_changes", s.area_changes},
          {"events_lost", s.events_lost},
          {"events_lost_total", s.events_lost_total},
          {"epoch", s.epoch},
          {"armed", s.epoch != 0},
          {"predump_seen", s.predump_seen},
          {"busiest_areas", busiest},
          {"predicted_dump_bytes", s.predicted_dump_bytes},
          {"predicted_freeze_ms", s.predicted_freeze_ms},
          {"complete", s.incomplete.empty()},
          {"incomplete_reason", s.incomplete},
          {"attach", dump::attach_json(attach)}};
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// The live view: a block of lines; the next one overwrites it.
int draw_view(const checkpoint::WatchSample& s, int pid, int lines_before) {
  if (lines_before > 0) std::printf("\033[%dA\033[J", lines_before);
  int lines = 0;
  auto line = [&](const std::string& text) {
    std::printf("%s\n", text.c_str());
    ++lines;
  };
  char buf[256];
  std::snprintf(buf, sizeof buf, "wpckpt watch: pid %d, epoch %" PRIu64 "%s", pid, s.epoch,
                s.predump_seen ? " (a pre-dump just ran)" : "");
  line(buf);
  if (s.epoch == 0) line(std::string("  ") + kNotArmed);
  std::snprintf(buf, sizeof buf, "  first writes:      %10.0f pages/s (%s/s)", s.dirty_pages_per_s,
                mib(static_cast<uint64_t>(s.dirty_pages_per_s * 4096)).c_str());
  line(buf);
  std::snprintf(buf, sizeof buf, "  dirty since parent:%10" PRIu64 " pages (%s)", s.pages_dirty_since_parent,
                mib(s.pages_dirty_since_parent * 4096).c_str());
  line(buf);
  std::snprintf(buf, sizeof buf, "  a dump now:        %s raw, ~%.0f ms frozen", mib(s.predicted_dump_bytes).c_str(),
                s.predicted_freeze_ms);
  line(buf);
  std::snprintf(buf, sizeof buf, "  area changes:      %10" PRIu64 "   records lost: %" PRIu64 " (%" PRIu64 " total)",
                s.area_changes, s.events_lost, s.events_lost_total);
  line(buf);
  if (!s.incomplete.empty()) line("  incomplete: " + s.incomplete);
  line("  busiest areas (pages written this interval):");
  for (const checkpoint::AreaActivity& a : s.busiest) {
    std::snprintf(buf, sizeof buf, "    %#14" PRIx64 "-%#14" PRIx64 " %8" PRIu64 "  %s", a.start, a.end, a.pages,
                  a.name.empty() ? "(anonymous)" : a.name.c_str());
    line(buf);
  }
  std::fflush(stdout);
  return lines;
}

void print_line(const checkpoint::WatchSample& s) {
  std::printf("%.0f pages/s first written, %" PRIu64 " dirty since parent, dump now ~%.0f ms, %" PRIu64
              " records lost%s%s%s\n",
              s.dirty_pages_per_s, s.pages_dirty_since_parent, s.predicted_freeze_ms, s.events_lost,
              s.incomplete.empty() ? "" : "; incomplete: ", s.incomplete.c_str(),
              s.epoch == 0 ? "; not armed yet (no pre-dump)" : "");
  std::fflush(stdout);
}

int watch(const WatchOptions& opts) {
  if (opts.pid <= 0) return report_usage("-t/--tree needs a process id", opts.json);
  if (!(opts.interval >= 0.05 && opts.interval <= 3600))
    return report_usage("--interval must be between 0.05 and 3600 seconds", opts.json);
  // Watched like a cooperating process: one without the agent is attached
  // first (not when there is no event queue to watch with: nothing to gain).
  attach::AttachReport attached;
  if (probe::has_feature("bpf_fault_events")) {
    auto a = attach::ensure_tracked(opts.pid);
    if (!a) return report_error(a.error(), opts.json);
    attached = *a;
  }
  auto w = checkpoint::WriteWatch::start(opts.pid);
  if (!w) return report_error(w.error(), opts.json);
  if (!opts.json) print_attach_line(attached, opts.pid);
  install_stop_handlers();
  bool live = !opts.json && isatty(STDOUT_FILENO);
  int lines = 0;
  for (uint64_t n = 0; !g_stop.load() && (opts.count == 0 || n < opts.count); ++n) {
    sleep_interval(opts.interval);
    auto s = (*w)->sample();
    if (!s) return report_error(s.error(), opts.json);
    if (opts.json && n == 0 && s->epoch == 0) log::warn("{}", kNotArmed);
    if (opts.json) {
      std::printf("%s\n", sample_json(*s, opts.pid, attached).dump().c_str());
      std::fflush(stdout);
    } else if (live) {
      lines = draw_view(*s, opts.pid, lines);
    } else {
      print_line(*s);
    }
  }
  return kExitOk;
}

}  // namespace

void add_watch_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<WatchOptions>();
  CLI::App* sub = app.add_subcommand("watch", "Show the live write rate of a tracked process from the event queue");
  sub->add_option("-t,--tree", opts->pid, "Pid of the process (one without the agent is attached first)")->required();
  sub->add_option("--interval", opts->interval, "Seconds between samples (default 1)");
  sub->add_option("--count", opts->count, "Stop after this many samples (default: until interrupted)");
  sub->add_flag("--json", opts->json, "Print one JSON object per sample, one per line");
  sub->callback([opts, &exit_code] { exit_code = watch(*opts); });
}

}  // namespace wpckpt::cli
