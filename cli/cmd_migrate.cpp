// wpckpt migrate -t PID --to ADDR:PORT: live migration to `wpckpt
// page-server --restore` on the destination (lib/iterate/migrate.hpp).
// Prints each pre-dump as iterate does, then the final dump, where the
// process runs now and the downtime. --json: one object per line.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/cancel.hpp"
#include "cli/commands.hpp"
#include "cli/iterate_output.hpp"
#include "cli/output.hpp"
#include "cli/page_server_options.hpp"
#include "lib/iterate/migrate.hpp"

namespace wpckpt::cli {
namespace {

struct MigrateOptions {
  bool json = false;
  int pid = 0;
  std::string to, secret_file;
  int max_iterations = 10;
  double target_downtime_ms = 300;
  double interval = 0;
  bool no_events = false;
  int compress_level = 1;
};

// "host:port" or "[v6]:port".
Result<net::Endpoint> parse_destination(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size())
    return make_error(EINVAL, "usage", "--to " + text + " has no port").with_hint("write --to ADDRESS:PORT");
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  unsigned long n = std::strtoul(port.c_str(), &end, 10);
  if (host.empty() || *end != '\0' || n == 0 || n > 65535)
    return make_error(EINVAL, "usage", "--to " + text + ": not ADDRESS:PORT").with_hint("write --to ADDRESS:PORT");
  return net::Endpoint{host, static_cast<uint16_t>(n)};
}

int run_migrate(const MigrateOptions& opts) {
  if (opts.pid <= 0) return report_usage("-t/--tree needs a process id", opts.json);
  if (opts.max_iterations < 1) return report_usage("--max-iterations must be at least 1", opts.json);
  if (!(opts.target_downtime_ms > 0)) return report_usage("--target-downtime-ms must be positive", opts.json);
  auto to = parse_destination(opts.to);
  if (!to) return report_usage(to.error().message(), opts.json);
  iterate::MigrateRequest req;
  req.pid = opts.pid;
  req.to = *to;
  req.secret_file = opts.secret_file.empty() ? default_secret_file() : opts.secret_file;
  req.max_iterations = opts.max_iterations;
  req.target_downtime_ms = opts.target_downtime_ms;
  req.interval_s = opts.interval;
  req.use_events = !opts.no_events;
  req.compress_level = opts.compress_level;
  req.cancel = install_cancel_handlers();
  auto report = iterate::migrate(req, [&](const iterate::IterationFigures& f) { print_iteration(f, opts.json); });
  if (!report) return report_error(report.error(), opts.json);
  const iterate::FinalFigures& last = report->iterations.final_dump;
  if (opts.json) {
    nlohmann::json doc = result_json(report->iterations);
    doc["destination"] = to->text();
    doc["final_image"] = report->final_image;
    doc["restored"] = {{"pid", report->restored.pid}, {"seconds", report->restored.seconds}};
    doc["downtime_ms"] = report->downtime_ms;
    doc["downtime_parts_ms"] = {{"frozen", last.frozen_ms},
                                {"dump", report->dump_ms},
                                {"commit", last.commit_ms},
                                {"restore_request", report->restore_request_ms}};
    std::printf("%s\n", doc.dump().c_str());
  } else {
    std::printf("%s\n", report->iterations.stop_reason.c_str());
    std::printf("final dump %s: %llu pages, frozen %.1f ms\n", report->final_image.c_str(),
                static_cast<unsigned long long>(last.pages_written), last.frozen_ms);
    std::printf("pid %d runs on %s (restored in %.3f s there); downtime %.1f ms: the dump %.1f ms (frozen %.1f, "
                "commit %.1f), the restore request %.1f ms\n",
                report->restored.pid, to->text().c_str(), report->restored.seconds, report->downtime_ms,
                report->dump_ms, last.frozen_ms, last.commit_ms, report->restore_request_ms);
  }
  return kExitOk;
}

}  // namespace

void add_migrate_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<MigrateOptions>();
  CLI::App* sub = app.add_subcommand("migrate", "Move a running process to `wpckpt page-server --restore` on another host");
  sub->add_option("-t,--tree", opts->pid, "Pid of the process")->required();
  sub->add_option("--to", opts->to, "ADDRESS:PORT of the page server on the destination")->required();
  sub->add_option("--secret-file", opts->secret_file, "The secret shared with the page server (default " + default_secret_file() + ")");
  sub->add_option("--max-iterations", opts->max_iterations, "Pre-dumps at most (default 10)");
  sub->add_option("--target-downtime-ms", opts->target_downtime_ms,
                  "Stop pre-dumping when the final dump is predicted to freeze the process less than this (default 300)");
  sub->add_option("--interval", opts->interval, "At least this many seconds between two pre-dumps (default 0)");
  sub->add_flag("--no-events", opts->no_events, "Do not use the event queue: every pre-dump scans everything");
  sub->add_option("--compress-level", opts->compress_level, "zstd level (negative: faster)");
  sub->add_flag("--json", opts->json, "Print one JSON object per iteration and one for the result, one per line");
  sub->callback([opts, &exit_code] { exit_code = run_migrate(*opts); });
}

}  // namespace wpckpt::cli
