// The full feature set: every probe of tracker/ and lib/probe, run lazily,
// cached for the life of the process, honouring WPCKPT_DISABLE_FEATURES.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/feature.hpp"
#include "lib/base/result.hpp"

namespace wpckpt::probe {

struct FeatureStatus {
  std::string key, description, loss;
  bool required = false;
  bool present = false;
  bool disabled = false;  // switched off by WPCKPT_DISABLE_FEATURES
  std::string detail;
  std::vector<std::string> needed_by;  // verbs that refuse without it
};

// Every known feature key, in display order.
const std::vector<std::string>& feature_keys();
// Probes one feature (cached). nullopt for an unknown key.
std::optional<FeatureStatus> feature(std::string_view key);
// Probes all features (cached).
std::vector<FeatureStatus> all_features();
// Convenience for code paths that choose a fallback.
bool has_feature(std::string_view key);
// Fails, naming the first missing (or switched-off) feature that `verb`
// needs, with the loss text `wpckpt check` prints for it. Verbs call it
// before they touch a process or create anything.
Result<void> require_features(std::string_view verb);

}  // namespace wpckpt::probe
