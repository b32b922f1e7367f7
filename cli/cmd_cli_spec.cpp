// Hidden verb "__cli-spec": the CLI definition as JSON, so that tests can
// check man pages and shell completions against it and they cannot drift.
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/criu_compat.hpp"
#include "cli/output.hpp"

namespace wpckpt::cli {
namespace {

nlohmann::json options_of(const CLI::App& app) {
  nlohmann::json opts = nlohmann::json::array();
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_group().empty()) continue;  // hidden
    nlohmann::json o;
    o["short"] = opt->get_snames();
    o["long"] = opt->get_lnames();
    o["positional"] = opt->get_positional();
    o["takes_value"] = opt->get_expected_max() != 0;  // flags expect 0 values
    o["description"] = opt->get_description();
    if (!opt->get_lnames().empty() || !opt->get_snames().empty()) opts.push_back(o);
  }
  return opts;
}

}  // namespace

void add_cli_spec_command(CLI::App& app, int& exit_code) {
  CLI::App* sub = app.add_subcommand("__cli-spec", "")->group("");
  sub->callback([&app, &exit_code] {
    nlohmann::json spec;
    spec["global_options"] = options_of(app);
    nlohmann::json verbs = nlohmann::json::object();
    for (const CLI::App* verb : app.get_subcommands([](CLI::App* s) { return !s->get_group().empty(); })) {
      verbs[verb->get_name()] = {{"description", verb->get_description()}, {"options", options_of(*verb)}};
    }
    spec["verbs"] = verbs;
    // Refused with a hint (criu_compat.hpp): names the man pages may use.
    spec["criu_options_refused"] = nlohmann::json::array();
    for (std::string_view name : criu_options_with_hints()) spec["criu_options_refused"].push_back(name);
    print_json(spec);
    exit_code = kExitOk;
  });
}

}  // namespace wpckpt::cli
