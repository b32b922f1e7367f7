// wpckpt merge: one standalone image (no parent) with the same content as the
// chain ending at -D. The output directory must be new or empty; the image
// appears there only when complete.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::cli {
namespace {

struct MergeOptions {
  bool json = false;
  std::string images_dir, output;
};

int merge(const MergeOptions& opts) {
  ProgressBar bar(!opts.json);
  image::WriterOptions writer;
  writer.progress = bar.callback();
  auto info = image::merge_chain(opts.images_dir, opts.output, writer);
  bar.finish();
  if (!info) return report_error(info.error(), opts.json);
  double ratio = info->bytes_compressed ? static_cast<double>(info->bytes_raw) / info->bytes_compressed : 0.0;
  if (opts.json) {
    print_json({{"ok", true},
                {"dir", info->dir.string()},
                {"pages_stored", info->pages_stored},
                {"pages_zero", info->pages_zero},
                {"bytes_raw", info->bytes_raw},
                {"bytes_compressed", info->bytes_compressed},
                {"ratio", ratio},
                {"seconds", info->seconds}});
  } else {
    std::printf("merged into %s: %llu pages stored, %llu zero, %llu bytes compressed (ratio %.2f)\n",
                info->dir.c_str(), static_cast<unsigned long long>(info->pages_stored),
                static_cast<unsigned long long>(info->pages_zero),
                static_cast<unsigned long long>(info->bytes_compressed), ratio);
  }
  return kExitOk;
}

}  // namespace

void add_merge_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<MergeOptions>();
  CLI::App* sub = app.add_subcommand("merge", "Squash a chain into one standalone image");
  sub->add_option("-D,--images-dir", opts->images_dir, "Newest image of the chain")->required();
  sub->add_option("-o,--output", opts->output, "Directory of the standalone image: new, or an empty directory")->required();
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = merge(*opts); });
}

}  // namespace wpckpt::cli
