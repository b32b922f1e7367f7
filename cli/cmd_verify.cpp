// wpckpt verify: checks every checksum and digest of the whole chain. Exit 0
// only when everything was read and matched; exit 1 naming the first problem.
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::cli {
namespace {

struct VerifyOptions {
  bool json = false;
  std::string images_dir;
};

int verify(const VerifyOptions& opts) {
  ProgressBar bar(!opts.json);
  auto report = image::verify_chain(opts.images_dir, bar.callback());
  bar.finish();
  if (!report) return report_error(report.error(), opts.json);
  if (opts.json) {
    print_json({{"ok", true},
                {"images", report->images},
                {"frames_checked", report->frames_checked},
                {"bytes_checked", report->bytes_checked}});
  } else {
    std::cout << "ok: " << report->images << " image" << (report->images == 1 ? "" : "s") << ", "
              << report->frames_checked << " frames, " << report->bytes_checked << " bytes checked\n";
  }
  return kExitOk;
}

}  // namespace

void add_verify_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<VerifyOptions>();
  CLI::App* sub = app.add_subcommand("verify", "Check every checksum and digest of the chain");
  sub->add_option("-D,--images-dir", opts->images_dir, "Image directory")->required();
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = verify(*opts); });
}

}  // namespace wpckpt::cli
