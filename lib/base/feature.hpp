// A kernel or system capability that wpckpt probes by behaviour: a real call,
// its errno read, nothing left open. Probes live next to the code that uses
// the capability (tracker/ for uffd and PAGEMAP_SCAN, lib/probe for process
// machinery); lib/probe/features.hpp runs and caches them.
#pragma once

#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wpckpt {

struct ProbeOutcome {
  bool present = false;
  std::string detail;  // what the probe saw: "ok", "EPERM from userfaultfd(2)", ...
};

struct FeatureProbe {
  std::string key;          // stable snake_case name, used by --json and --feature
  std::string description;  // one line: what it is
  std::string loss;         // what the user loses when it is missing: what the verbs really do then
  bool required = false;    // pre-dump/dump cannot work without it
  std::function<ProbeOutcome()> run;
  // Verbs ("run", "pre-dump", "dump", "restore") that refuse without it,
  // before touching any process (probe::require_features). Every other verb
  // works without it: it has a fallback (the loss text says which) or does
  // not use it.
  std::vector<std::string> needed_by;
};

// Tests and users switch features off to exercise fallback paths (the verbs
// then behave as on a kernel without them):
// WPCKPT_DISABLE_FEATURES=key1,key2 (the CLI's hidden --disable-feature sets it
// too, so that child processes see the same switches).
constexpr const char* kDisableFeaturesEnv = "WPCKPT_DISABLE_FEATURES";

inline bool feature_disabled(std::string_view key) {
  const char* env = std::getenv(kDisableFeaturesEnv);
  if (env == nullptr) return false;
  std::string_view list(env);
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    if (item == key || item == "all") return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace wpckpt
