// wpckpt restore: Bring the process back from an image chain
#include <fmt/core.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "lib/base/log.hpp"
#include "lib/restore/restore.hpp"
#include "dump-format/image.hpp"
#include "lib/restore/supervise.hpp"

namespace wpckpt::cli {
namespace {

struct RestoreOptions {
  bool json = false, detached = false, lazy = false, allow_other_owner = false;
  std::string images_dir;
};

nlohmann::json report_json(const restore::RestoreReport& r, bool detached) {
  double gbps = r.fill_seconds > 0 ? static_cast<double>(r.pages_stored * image::kPageSize) / r.fill_seconds / 1e9 : 0;
  return {{"pid", r.pid},
          {"detached", detached},
          {"threads", r.threads},
          {"images", r.images},
          {"pages_restored", r.pages_stored},
          {"pages_zero", r.pages_zero},
          {"bytes", r.pages_stored * image::kPageSize},
          {"fill_seconds", r.fill_seconds},
          {"seconds", r.seconds},
          {"gb_per_s", gbps},
          {"warnings", r.warnings}};
}

int run_restore(const RestoreOptions& opts) {
  if (opts.lazy) {
    return report_error(make_error(ENOTSUP, "restore --lazy", "")
                            .with_hint("lazy restore is not supported yet; restore without --lazy"),
                        opts.json);
  }
  ProgressBar bar(!opts.json);
  restore::RestoreOptions ro;
  ro.detached = opts.detached;
  ro.allow_other_owner = opts.allow_other_owner;
  ro.progress = bar.callback();
  auto result = restore::restore_process(opts.images_dir, ro);
  bar.finish();
  if (!result) return report_error(result.error(), opts.json);
  const restore::RestoreReport& r = *result;
  for (const auto& w : r.warnings) log::warn("{}", w);
  nlohmann::json doc = report_json(r, opts.detached);
  if (opts.json) {
    print_json(doc);
    std::fflush(stdout);
  } else if (opts.detached) {
    fmt::print("{}\n", r.pid);
    std::fflush(stdout);
  }
  log::info("restored pid {} ({} threads, {} images): {} pages, {:.3f} s fill, {:.2f} GB/s, {:.3f} s total", r.pid,
            r.threads, r.images, r.pages_stored, r.fill_seconds, doc["gb_per_s"].get<double>(), r.seconds);
  if (opts.detached) return kExitOk;
  // The restored process is our child: we end with its status.
  return restore::supervise_child(r.pid);
}

}  // namespace

void add_restore_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<RestoreOptions>();
  CLI::App* sub = app.add_subcommand("restore", "Bring the process back from an image chain");
  sub->add_option("-D,--images-dir", opts->images_dir, "Image directory of a dump")->required();
  sub->add_flag("-d,--restore-detached", opts->detached, "Detach: print the pid and exit");
  sub->add_flag("--lazy", opts->lazy, "Fill memory on demand (userfaultfd MISSING; not supported yet)");
  sub->add_flag("--allow-other-owner", opts->allow_other_owner, "Restore images owned by another user");
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = run_restore(*opts); });
}

}  // namespace wpckpt::cli
