// wpckpt run: start CMD as a cooperating process. The agent library is
// appended to LD_PRELOAD and CMD replaces wpckpt in place (same pid, parent,
// stdio, session), so `wpckpt run` composes with shells, nohup and service
// managers. Exit codes when CMD cannot be started follow the shell: 127 not
// found, 126 found but not executable.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "lib/base/privilege.hpp"
#include "lib/base/feature.hpp"
#include "lib/base/uapi/agent_state.hpp"
#include "lib/probe/features.hpp"

namespace wpckpt::cli {
namespace {

constexpr const char* kAgentLibrary = "libwpckpt-agent.so";
constexpr int kExitCannotExecute = 126;
constexpr int kExitCommandNotFound = 127;

struct RunOptions {
  bool json = false;
  std::vector<std::string> command;
};

// Next to the binary (build tree), then the install layout bin/../lib.
// WPCKPT_AGENT_LIBRARY overrides both, except in an elevated run
// (lib/base/privilege.hpp).
Result<std::filesystem::path> find_agent_library() {
  namespace fs = std::filesystem;
  if (const char* env = runs_elevated() ? nullptr : std::getenv("WPCKPT_AGENT_LIBRARY")) {
    if (fs::exists(env)) return fs::absolute(env);
    return make_error(ENOENT, "find the wpckpt agent", env).with_hint("WPCKPT_AGENT_LIBRARY names no file");
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return make_error(ec.value(), "readlink", "/proc/self/exe");
  for (const fs::path& candidate : {exe.parent_path() / kAgentLibrary, exe.parent_path() / ".." / "lib" / kAgentLibrary}) {
    if (fs::exists(candidate, ec)) return fs::weakly_canonical(candidate, ec);
  }
  return make_error(ENOENT, "find the wpckpt agent", std::string(kAgentLibrary) + " next to " + exe.string())
      .with_hint("install libwpckpt-agent.so beside the wpckpt binary or in ../lib, or set WPCKPT_AGENT_LIBRARY");
}

// LD_PRELOAD with the agent appended (once): earlier entries keep precedence.
std::string preload_with(const std::string& agent) {
  const char* old = std::getenv("LD_PRELOAD");
  std::string list = old ? old : "";
  if (list.find(agent) != std::string::npos) return list;
  if (!list.empty()) list += ':';
  return list + agent;
}

// The userfaultfd routes the feature switches leave to the agent.
std::string agent_routes() {
  std::string routes;
  for (const auto& [key, route] : {std::pair{"userfaultfd_syscall", uapi::kRouteSyscall},
                                   std::pair{"userfaultfd_user_mode_only", uapi::kRouteUserModeOnly},
                                   std::pair{"dev_userfaultfd", uapi::kRouteDev}}) {
    if (feature_disabled(key)) continue;
    routes += (routes.empty() ? "" : ",") + std::string(route);
  }
  return routes;
}

int run(const RunOptions& opts) {
  if (auto needed = probe::require_features("run"); !needed) return report_error(needed.error(), opts.json);
  auto agent = find_agent_library();
  if (!agent) return report_error(agent.error(), opts.json);
  std::string preload = preload_with(agent->string());
  setenv("LD_PRELOAD", preload.c_str(), 1);
  setenv(uapi::kAgentRoutesEnv, agent_routes().c_str(), 1);
  std::vector<char*> argv;
  for (const std::string& a : opts.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  int err = errno;
  report_error(make_error(err, "exec", opts.command[0])
                   .with_hint(err == ENOENT ? "check the command name and PATH" : "check the file's permissions"),
               opts.json);
  return err == ENOENT ? kExitCommandNotFound : kExitCannotExecute;
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Start CMD as a cooperating process (the agent is preloaded)");
  sub->add_flag("--json", opts->json, "Report errors as JSON");
  sub->add_option("command", opts->command, "The command and its arguments (after --)")->required();
  sub->callback([opts, &exit_code] { exit_code = run(*opts); });
}

}  // namespace wpckpt::cli
