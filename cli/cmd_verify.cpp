// wpckpt verify: checks every checksum and digest of the whole chain (of
// every process, for a tree's image). Exit 0
// only when everything was read and matched; exit 1 naming the first problem.
#include <fmt/core.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "cli/tree_images.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::cli {
namespace {

struct VerifyOptions {
  bool json = false;
  std::string images_dir;
  int pid = 0;
};

// The images to check: -D, or every live member of a tree (one with --pid).
Result<std::vector<std::pair<int, std::filesystem::path>>> images_to_check(const VerifyOptions& opts) {
  WPCKPT_TRY_ASSIGN(ProcessImage chosen, process_image(opts.images_dir, opts.pid));
  if (!chosen.tree || opts.pid != 0) return std::vector<std::pair<int, std::filesystem::path>>{{chosen.pid, chosen.dir}};
  std::vector<std::pair<int, std::filesystem::path>> all;
  for (const auto& m : chosen.tree->processes)
    if (!m.zombie) all.emplace_back(m.pid, std::filesystem::path(opts.images_dir) / state::member_dir(m.pid));
  return all;
}

int verify(const VerifyOptions& opts) {
  auto images = images_to_check(opts);
  if (!images) return report_error(images.error(), opts.json);
  ProgressBar bar(!opts.json);
  image::VerifyReport total;
  nlohmann::json processes = nlohmann::json::array();
  for (const auto& [pid, dir] : *images) {
    auto one = image::verify_chain(dir, bar.callback());
    if (!one) {
      bar.finish();
      Error e = std::move(one).error();
      if (pid != 0) e.context = fmt::format("process {}: {}", pid, e.context);
      return report_error(e, opts.json);
    }
    total.images = std::max(total.images, one->images);
    total.frames_checked += one->frames_checked;
    total.bytes_checked += one->bytes_checked;
    if (pid != 0) processes.push_back({{"pid", pid}, {"images", one->images}, {"frames_checked", one->frames_checked}});
  }
  bar.finish();
  const image::VerifyReport* report = &total;
  if (opts.json) {
    nlohmann::json doc = {{"ok", true},
                          {"images", report->images},
                          {"frames_checked", report->frames_checked},
                          {"bytes_checked", report->bytes_checked}};
    if (!processes.empty()) doc["processes"] = processes;
    print_json(doc);
  } else {
    if (!processes.empty()) std::cout << "tree: " << processes.size() << " process images checked\n";
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
  sub->add_option("--pid", opts->pid, "Only this process of a tree's image (default: every one)");
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = verify(*opts); });
}

}  // namespace wpckpt::cli
