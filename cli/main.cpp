// wpckpt: incremental checkpoint/restore of Linux processes.
#include <CLI/CLI.hpp>
#include <malloc.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/criu_compat.hpp"
#include "cli/output.hpp"
#include "lib/base/feature.hpp"
#include "lib/base/log.hpp"

namespace {

// -q, then CRIU's -vN (--verbosity N: 0 nothing, 1 errors, 2 warnings, the
// default, 3 info, 4 debug; 5 trace), then -v/-vv/-vvv.
void apply_verbosity(int verbose, bool quiet, int verbosity) {
  using wpckpt::log::Level;
  if (verbosity >= 0) {
    wpckpt::log::set_level(static_cast<Level>(verbosity));
    return;
  }
  if (quiet) {
    wpckpt::log::set_level(Level::Error);
    return;
  }
  if (verbose >= 3) wpckpt::log::set_level(Level::Trace);
  else if (verbose == 2) wpckpt::log::set_level(Level::Debug);
  else if (verbose == 1) wpckpt::log::set_level(Level::Info);
}

// --disable-feature is passed on through the environment so that helper
// processes (the agent, restorers) see the same switches.
void apply_disabled_features(const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  std::string list;
  if (const char* old = std::getenv(wpckpt::kDisableFeaturesEnv)) list = old;
  for (const std::string& k : keys) {
    if (!list.empty()) list += ',';
    list += k;
  }
  setenv(wpckpt::kDisableFeaturesEnv, list.c_str(), 1);
}

using AddCommand = void (*)(CLI::App&, int&);
struct Verb {
  const char* name;
  AddCommand add;
};
// In the order `wpckpt --help` lists them.
constexpr Verb kVerbs[] = {
    {"check", wpckpt::cli::add_check_command},
    {"run", wpckpt::cli::add_run_command},
    {"pre-dump", wpckpt::cli::add_pre_dump_command},
    {"dump", wpckpt::cli::add_dump_command},
    {"restore", wpckpt::cli::add_restore_command},
    {"show", wpckpt::cli::add_show_command},
    {"verify", wpckpt::cli::add_verify_command},
    {"merge", wpckpt::cli::add_merge_command},
    {"cat", wpckpt::cli::add_cat_command},
    {"watch", wpckpt::cli::add_watch_command},
    {"iterate", wpckpt::cli::add_iterate_command},
    {"untrack", wpckpt::cli::add_untrack_command},
    {"page-server", wpckpt::cli::add_page_server_command},
    {"migrate", wpckpt::cli::add_migrate_command},
    {"snapshot", wpckpt::cli::add_snapshot_command},
    {"__cli-spec", wpckpt::cli::add_cli_spec_command},
};

// The verb the words name: the first word that is not an option of wpckpt
// itself (with its value), or "" when there is none.
std::string named_verb(const std::vector<std::string>& words) {
  for (size_t i = 1; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--verbosity" || w == "--disable-feature") {
      ++i;  // its value
      continue;
    }
    if (!w.empty() && w[0] == '-') continue;
    return w;
  }
  return {};
}

// Only the verb named is built when there is one: building all of them took
// 1.2 ms of every run here, as long as a delta pre-dump's scan of 1 GiB.
// Without one (--help, a misspelt verb), all of them, for CLI11's list of
// verbs and its errors; and for __cli-spec, which describes them all.
void add_commands(CLI::App& app, int& exit_code, const std::vector<std::string>& words) {
  const std::string verb = named_verb(words);
  for (const Verb& v : kVerbs) {
    if (verb == v.name && verb != "__cli-spec") {
      v.add(app, exit_code);
      return;
    }
  }
  for (const Verb& v : kVerbs) v.add(app, exit_code);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wpckpt::cli;
  // Large blocks from the heap, and freed memory kept: on a guest where the
  // first touch of a fresh page costs microseconds, what a verb allocates
  // inside a freeze (the area lists and jobs of a process with thousands
  // of mappings) reuses pages touched before it instead of faulting in new
  // ones. Peak RSS is unchanged: what is kept was in use before.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"wpckpt: incremental checkpoint/restore of Linux processes with async write-protect tracking",
               "wpckpt"};
  app.set_version_flag("--version", std::string("wpckpt ") + WPCKPT_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  int verbose = 0, verbosity = -1;
  bool quiet = false;
  std::vector<std::string> disabled;
  app.add_flag("-v,--verbose", verbose, "More messages (repeat for debug and trace)");
  app.add_flag("-q,--quiet", quiet, "Only errors");
  app.add_option("--verbosity", verbosity, "Log level as CRIU's -vN: 0 none, 1 errors, 2 warnings, 3 info, 4 debug, 5 trace")
      ->check(CLI::Range(0, 5));
  app.add_option("--disable-feature", disabled, "Treat a probed feature as missing (for testing fallbacks)")
      ->group("");  // hidden
  app.parse_complete_callback([&] {
    apply_verbosity(verbose, quiet, verbosity);
    apply_disabled_features(disabled);
  });

  int exit_code = kExitOk;
  // CRIU's -v0..-v4 become --verbosity=N (CLI11 would read "-v4" as "-v -4").
  std::vector<std::string> words = numeric_verbosity_as_option(argc, argv);
  add_commands(app, exit_code, words);
  std::vector<char*> args;
  for (std::string& w : words) args.push_back(w.data());
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) print_criu_option_hints(words, e.what());
    return rc == 0 ? kExitOk : kExitUsage;
  } catch (const std::exception& e) {
    // A bug (libraries return errors, they do not throw): say so, never abort.
    std::cerr << "wpckpt: error: internal error: " << e.what() << "\n"
              << "wpckpt: hint: this is a bug in wpckpt; please report it with the command line\n";
    return kExitFailure;
  } catch (...) {
    std::cerr << "wpckpt: error: internal error: unknown exception\n"
              << "wpckpt: hint: this is a bug in wpckpt; please report it with the command line\n";
    return kExitFailure;
  }
  return exit_code;
}
