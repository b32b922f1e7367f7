// wpckpt untrack -t PID: remove the tracking wpckpt attached to a process
// (pre-dump, dump or watch of a process started without `wpckpt run`).
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "lib/attach/attach.hpp"

namespace wpckpt::cli {
namespace {

struct UntrackOptions {
  bool json = false;
  int pid = 0;
};

int untrack(const UntrackOptions& opts) {
  if (opts.pid <= 0) return report_usage("-t/--tree needs a process id", opts.json);
  auto r = attach::untrack(opts.pid);
  if (!r) return report_error(r.error(), opts.json);
  if (opts.json) {
    print_json({{"pid", opts.pid},
                {"uffd_fd", r->uffd_fd},
                {"state_fd", r->state_fd},
                {"areas_unregistered", r->areas_unregistered},
                {"inherited", r->inherited},
                {"frozen_ms", r->frozen_ms}});
    return kExitOk;
  }
  std::printf("untracked process %d: %llu areas unregistered, closed fd %d (state page)", opts.pid,
              static_cast<unsigned long long>(r->areas_unregistered), r->state_fd);
  if (r->uffd_fd >= 0) std::printf(" and fd %d (userfaultfd)", r->uffd_fd);
  std::printf("%s; frozen %.2f ms\n", r->inherited ? " inherited from its fork parent" : "", r->frozen_ms);
  return kExitOk;
}

}  // namespace

void add_untrack_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<UntrackOptions>();
  CLI::App* sub = app.add_subcommand("untrack", "Remove the tracking wpckpt attached to a process");
  sub->add_option("-t,--tree", opts->pid, "Pid of the process wpckpt attached to")->required();
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = untrack(*opts); });
}

}  // namespace wpckpt::cli
