#include "lib/probe/features.hpp"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "lib/probe/process_probes.hpp"
#include "lib/probe/user_rights.hpp"
#include "tracker/events/event_probe.hpp"
#include "tracker/kernel_probes.hpp"

namespace wpckpt::probe {
namespace {

struct Registry {
  std::vector<FeatureProbe> probes;
  std::vector<std::string> keys;
  std::map<std::string, FeatureStatus, std::less<>> cache;
  std::mutex mutex;

  Registry() {
    probes = tracker::kernel_probes();
    for (FeatureProbe& p : tracker::event_probes()) probes.push_back(std::move(p));
    for (FeatureProbe& p : process_probes()) probes.push_back(std::move(p));
    for (const FeatureProbe& p : probes) keys.push_back(p.key);
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

const std::vector<std::string>& feature_keys() { return registry().keys; }

std::optional<FeatureStatus> feature(std::string_view key) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  if (auto it = r.cache.find(key); it != r.cache.end()) return it->second;
  for (const FeatureProbe& p : r.probes) {
    if (p.key != key) continue;
    FeatureStatus s{p.key, p.description, p.loss, p.required, false, false, {}, p.needed_by};
    if (feature_disabled(p.key)) {
      s.disabled = true;
      s.detail = std::string("switched off by ") + kDisableFeaturesEnv;
    } else {
      ProbeOutcome o = p.run();
      s.present = o.present;
      s.detail = o.detail;
    }
    r.cache.emplace(p.key, s);
    return s;
  }
  return std::nullopt;
}

std::vector<FeatureStatus> all_features() {
  std::vector<FeatureStatus> out;
  for (const std::string& key : feature_keys()) out.push_back(*feature(key));
  return out;
}

bool has_feature(std::string_view key) {
  auto s = feature(key);
  return s && s->present;
}

Result<void> require_features(std::string_view verb) {
  std::vector<std::string> needed;  // only these are probed: the rest cost the verb nothing
  {
    Registry& r = registry();
    for (const FeatureProbe& p : r.probes)
      if (std::find(p.needed_by.begin(), p.needed_by.end(), verb) != p.needed_by.end()) needed.push_back(p.key);
  }
  // Restore without the capability is what a normal user meets: say so, and the way around.
  if (verb == "restore" && !feature_disabled("cap_checkpoint_restore") && !has_feature("cap_checkpoint_restore"))
    return make_error(EPERM, "restore",
                      "needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN to give the process its pid (clone3 with "
                      "set_tid); uid " + std::to_string(::getuid()) + " has neither")
        .with_hint(restore_way_around());
  for (const std::string& key : needed) {
    std::optional<FeatureStatus> s = feature(key);
    if (!s || s->present) continue;
    return make_error(ENOTSUP, std::string(verb),
                      "needs feature " + key + ", " + (s->disabled ? s->detail : "missing (" + s->detail + ")"))
        .with_hint("without " + key + ": " + s->loss + "; see `wpckpt check`");
  }
  return ok();
}

}  // namespace wpckpt::probe
