// wpckpt merge: one standalone image (no parent) with the same content as the
// chain ending at -D. The output directory must be new or empty; the image
// appears there only when complete. A tree's image is merged member by
// member into a standalone tree (or, with --pid, one member into one image).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "cli/tree_images.hpp"
#include "dump-format/image.hpp"
#include "lib/dump/tree_image.hpp"

namespace wpckpt::cli {
namespace {

struct MergeOptions {
  bool json = false;
  std::string images_dir, output;
  int pid = 0;
};

// Every live member's chain into its own standalone image inside `out`,
// then tree.json; `out` appears only when every member is in.
Result<image::CommitInfo> merge_tree(const std::string& dir, const state::TreeState& tree, const std::string& out,
                                     const image::WriterOptions& writer) {
  WPCKPT_TRY_ASSIGN(dump::TreeImageDir merged, dump::TreeImageDir::create(out));
  image::CommitInfo total;
  for (const auto& m : tree.processes) {
    if (m.zombie) continue;
    WPCKPT_TRY_ASSIGN(image::CommitInfo one,
                      image::merge_chain(std::filesystem::path(dir) / state::member_dir(m.pid), merged.member(m.pid), writer));
    total.pages_stored += one.pages_stored;
    total.pages_zero += one.pages_zero;
    total.bytes_raw += one.bytes_raw;
    total.bytes_compressed += one.bytes_compressed;
    total.seconds += one.seconds;
  }
  WPCKPT_TRY(merged.commit(tree));
  total.dir = out;
  return total;
}

int merge(const MergeOptions& opts) {
  auto which = process_image(opts.images_dir, opts.pid);
  if (!which) return report_error(which.error(), opts.json);
  ProgressBar bar(!opts.json);
  image::WriterOptions writer;
  writer.progress = bar.callback();
  auto info = which->tree && opts.pid == 0 ? merge_tree(opts.images_dir, *which->tree, opts.output, writer)
                                           : image::merge_chain(which->dir, opts.output, writer);
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
  sub->add_option("--pid", opts->pid, "Only this process of a tree's image, into an image of its own");
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = merge(*opts); });
}

}  // namespace wpckpt::cli
