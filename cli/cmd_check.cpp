// wpckpt check [--json] [--feature NAME|list]: what this kernel supports, and
// what the user who runs it can do with it.
#include <sys/utsname.h>

#include <iostream>
#include <string>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "lib/probe/features.hpp"
#include "lib/probe/user_rights.hpp"

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

nlohmann::json user_json(const probe::UserRights& u) {
  nlohmann::json rights = nlohmann::json::object();
  for (const probe::Right& r : u.rights) {
    nlohmann::json j = {{"can", r.can}, {"what", r.what}, {"needs", r.needs}};
    if (!r.can) {
      j["why_not"] = r.why_not;
      j["way_around"] = r.way_around;
    }
    rights[r.key] = j;
  }
  return {{"uid", u.uid},
          {"root", u.root},
          {"elevated", u.elevated},
          {"yama_ptrace_scope", u.yama_scope},
          {"can_checkpoint", u.can_checkpoint},
          {"can_restore", u.can_restore},
          {"rights", rights}};
}

// What this user can do (lib/probe/user_rights.hpp), after the feature table.
void print_user(const probe::UserRights& u) {
  std::cout << "\nas uid " << u.uid << (u.root ? " (root)" : "") << (u.elevated ? " (elevated copy)" : "")
            << ":\n";
  for (const probe::Right& r : u.rights) {
    std::cout << "  " << (r.can ? "yes " : "NO  ") << r.what << "\n      needs: " << r.needs << "\n";
    if (!r.can) std::cout << "      you lack: " << r.why_not << "\n      instead: " << r.way_around << "\n";
  }
}

std::string verdict(bool required_ok, const probe::UserRights& u) {
  if (!required_ok) return "wpckpt cannot track or checkpoint on this machine: a required feature is missing.";
  const std::string who = "uid " + std::to_string(u.uid);
  if (u.can_checkpoint && u.can_restore) return "wpckpt can checkpoint and restore on this machine as " + who + ".";
  if (u.can_checkpoint)
    return "as " + who + ", wpckpt can checkpoint your processes but cannot restore them (see \"instead\" above).";
  return "as " + who + ", wpckpt cannot checkpoint (see \"instead\" above).";
}

int check_all(const CheckOptions& opts) {
  std::vector<probe::FeatureStatus> all = probe::all_features();
  bool required_ok = true;
  for (const auto& s : all) required_ok = required_ok && (s.present || !s.required);
  const probe::UserRights user = probe::user_rights();
  // Usable: this user can both checkpoint and restore (features alone are not enough).
  const bool usable = required_ok && user.can_checkpoint && user.can_restore;
  if (opts.json) {
    nlohmann::json features = nlohmann::json::object(), details = nlohmann::json::object();
    nlohmann::json missing = nlohmann::json::array();
    for (const auto& s : all) {
      features[s.key] = s.present;
      details[s.key] = s.detail;
      if (!s.present) missing.push_back({{"feature", s.key}, {"required", s.required}, {"loss", s.loss}});
    }
    print_json({{"kernel", kernel_release()},
                {"usable", usable},
                {"features_usable", required_ok},
                {"user", user_json(user)},
                {"features", features},
                {"details", details},
                {"missing", missing}});
    return usable ? kExitOk : kExitFailure;
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
  print_user(user);
  std::cout << "\n" << verdict(required_ok, user) << "\n";
  return usable ? kExitOk : kExitFailure;
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
