// wpckpt dump: Freeze the process, write the last delta and its full state
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace wpckpt::cli {
namespace {

struct DumpOptions {
  bool json = false, leave_running = false;
  int pid = 0;
  std::string images_dir, prev_images_dir;
  int compress_level = 1;
};

}  // namespace

void add_dump_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<DumpOptions>();
  CLI::App* sub = app.add_subcommand("dump", "Freeze the process, write the last delta and its full state");
  sub->add_option("-t,--tree", opts->pid, "Pid of the cooperating process")->required();
  sub->add_option("-D,--images-dir", opts->images_dir, "Directory of the new image (must not exist)")->required();
  sub->add_option("--prev-images-dir", opts->prev_images_dir, "Parent image (a pre-dump of the same process)");
  sub->add_flag("-R,--leave-running", opts->leave_running, "Resume the process after the dump instead of killing it");
  sub->add_option("--compress-level", opts->compress_level, "zstd level (negative: faster)");
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = not_built("dump", "issue #5"); });
}

}  // namespace wpckpt::cli
