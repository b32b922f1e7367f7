// wpckpt show: Show what an image (and its chain) holds
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace wpckpt::cli {
namespace {

struct ShowOptions {
  bool json = false;
  std::string images_dir;
};

}  // namespace

void add_show_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ShowOptions>();
  CLI::App* sub = app.add_subcommand("show", "Show what an image (and its chain) holds");
  sub->add_option("-D,--images-dir", opts->images_dir, "Image directory")->required();
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = not_built("show", "issue #3"); });
}

}  // namespace wpckpt::cli
