// wpckpt merge: Squash a chain into one standalone image
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace wpckpt::cli {
namespace {

struct MergeOptions {
  bool json = false;
  std::string images_dir, output;
};

}  // namespace

void add_merge_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<MergeOptions>();
  CLI::App* sub = app.add_subcommand("merge", "Squash a chain into one standalone image");
  sub->add_option("-D,--images-dir", opts->images_dir, "Newest image of the chain")->required();
  sub->add_option("-o,--output", opts->output, "Directory of the standalone image (must not exist)")->required();
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = not_built("merge", "issue #3"); });
}

}  // namespace wpckpt::cli
