// wpckpt run: Start CMD as a cooperating process (the agent is preloaded)
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace wpckpt::cli {
namespace {

struct RunOptions {
  bool json = false;
  std::vector<std::string> command;
};

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Start CMD as a cooperating process (the agent is preloaded)");
  sub->add_flag("--json", opts->json, "Report errors as JSON");
  sub->add_option("command", opts->command, "The command and its arguments (after --)")->required();
  sub->callback([opts, &exit_code] { exit_code = not_built("run", "issue #4"); });
}

}  // namespace wpckpt::cli
