// `wpckpt check`'s probe of the event queue: the very programs and attach
// points the reader uses, loaded against a short-lived child of ours that
// maps, writes and discards memory, and whether each of those was seen.
#pragma once

#include <vector>

#include "lib/base/feature.hpp"

namespace wpckpt::tracker {

constexpr const char* kEventQueueFeature = "bpf_fault_events";

std::vector<FeatureProbe> event_probes();

}  // namespace wpckpt::tracker
