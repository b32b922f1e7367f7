// wpckpt restore: Bring the process back from an image chain
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace wpckpt::cli {
namespace {

struct RestoreOptions {
  bool json = false, detached = false, lazy = false, allow_other_owner = false;
  std::string images_dir;
};

}  // namespace

void add_restore_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<RestoreOptions>();
  CLI::App* sub = app.add_subcommand("restore", "Bring the process back from an image chain");
  sub->add_option("-D,--images-dir", opts->images_dir, "Image directory of a dump")->required();
  sub->add_flag("-d,--restore-detached", opts->detached, "Detach: print the pid and exit");
  sub->add_flag("--lazy", opts->lazy, "Fill memory on demand (userfaultfd MISSING)");
  sub->add_flag("--allow-other-owner", opts->allow_other_owner, "Restore images owned by another user");
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = not_built("restore", "issue #6"); });
}

}  // namespace wpckpt::cli
