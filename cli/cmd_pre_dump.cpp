// wpckpt pre-dump: Write a delta of what the process wrote; it keeps running
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace wpckpt::cli {
namespace {

struct PreDumpOptions {
  bool json = false;
  int pid = 0;
  std::string images_dir, prev_images_dir;
  int compress_level = 1;
};

}  // namespace

void add_pre_dump_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<PreDumpOptions>();
  CLI::App* sub = app.add_subcommand("pre-dump", "Write a delta of what the process wrote; it keeps running");
  sub->add_option("-t,--tree", opts->pid, "Pid of the cooperating process")->required();
  sub->add_option("-D,--images-dir", opts->images_dir, "Directory of the new image (must not exist)")->required();
  sub->add_option("--prev-images-dir", opts->prev_images_dir, "Parent image (default: none, a full first iteration)");
  sub->add_option("--compress-level", opts->compress_level, "zstd level (negative: faster)");
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = not_built("pre-dump", "issue #4"); });
}

}  // namespace wpckpt::cli
