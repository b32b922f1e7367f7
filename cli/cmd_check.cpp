// wpckpt check [--json] [--feature NAME|list]: what this kernel supports.
#include <sys/utsname.h>

#include <iostream>
#include <string>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "lib/probe/features.hpp"

namespace wpckpt::cli {
namespace {

struct CheckOptions {
  bool json = false;
  std::string feature;
};

std::string kernel_release() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

// `check --feature list`, as CRIU's: every feature name, one per line.
int list_features(const CheckOptions& opts) {
  std::vector<std::string> keys = probe::feature_keys();
  if (opts.json) {
    print_json(keys);
  } else {
    for (const std::string& k : keys) std::cout << k << "\n";
  }
  return kExitOk;
}

int check_one(const CheckOptions& opts) {
  if (opts.feature == "list") return list_features(opts);
  auto status = probe::feature(opts.feature);
  if (!status) {
    std::string known;
    for (const std::string& k : probe::feature_keys()) known += (known.empty() ? "" : ", ") + k;
    return report_usage("unknown feature '" + opts.feature + "'; known features: " + known, opts.json);
  }
  if (opts.json) {
    print_json({{"feature", status->key}, {"present", status->present}, {"detail", status->detail}});
  } else {
    std::cout << status->key << ": " << (status->present ? "present" : "missing") << " (" << status->detail
              << ")\n";
  }
  return status->present ? kExitOk : kExitFailure;
}

int check_all(const CheckOptions& opts) {
  std::vector<probe::FeatureStatus> all = probe::all_features();
  bool required_ok = true;
  for (const auto& s : all) required_ok = required_ok && (s.present || !s.required);
  if (opts.json) {
    nlohmann::json features = nlohmann::json::object(), details = nlohmann::json::object();
    nlohmann::json missing = nlohmann::json::array();
    for (const auto& s : all) {
      features[s.key] = s.present;
      details[s.key] = s.detail;
      if (!s.present) missing.push_back({{"feature", s.key}, {"required", s.required}, {"loss", s.loss}});
    }
    print_json({{"kernel", kernel_release()},
                {"usable", required_ok},
                {"features", features},
                {"details", details},
                {"missing", missing}});
    return required_ok ? kExitOk : kExitFailure;
  }
  std::cout << "kernel: " << kernel_release() << "\n\n";
  size_t width = 0;
  for (const auto& s : all) width = std::max(width, s.key.size());
  for (const auto& s : all) {
    std::string state = s.present ? "yes" : (s.disabled ? "off" : "NO");
    std::cout << s.key << std::string(width + 2 - s.key.size(), ' ') << (state.size() < 4 ? state + std::string(4 - state.size(), ' ') : state);
    if (s.present) {
      std::cout << s.description << "\n";
    } else {
      std::cout << (s.required ? "REQUIRED — " : "") << "without it: " << s.loss << "  [" << s.detail << "]\n";
    }
  }
  std::cout << "\n"
            << (required_ok ? "wpckpt can checkpoint and restore on this machine.\n"
                            : "wpckpt cannot track or checkpoint on this machine: a required feature is missing.\n");
  return required_ok ? kExitOk : kExitFailure;
}

}  // namespace

void add_check_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<CheckOptions>();
  CLI::App* sub = app.add_subcommand("check", "Report what this kernel supports, and what is missing");
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->add_option("--feature", opts->feature, "Check one feature: exit 0 present, 1 missing, 2 unknown name; 'list' prints the names");
  sub->callback([opts, &exit_code] { exit_code = opts->feature.empty() ? check_all(*opts) : check_one(*opts); });
}

}  // namespace wpckpt::cli
