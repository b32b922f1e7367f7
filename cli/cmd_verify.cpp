// wpckpt verify: Check every checksum and digest of the chain
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace wpckpt::cli {
namespace {

struct VerifyOptions {
  bool json = false;
  std::string images_dir;
};

}  // namespace

void add_verify_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<VerifyOptions>();
  CLI::App* sub = app.add_subcommand("verify", "Check every checksum and digest of the chain");
  sub->add_option("-D,--images-dir", opts->images_dir, "Image directory")->required();
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = not_built("verify", "issue #3"); });
}

}  // namespace wpckpt::cli
