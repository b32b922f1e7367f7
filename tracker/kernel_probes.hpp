// Behavioural probes of the kernel interfaces the tracker uses: userfaultfd
// (three ways to get one), each uffd feature, PAGEMAP_SCAN and its categories,
// async write-protect end to end, discarded-page reporting, soft-dirty.
#pragma once

#include <vector>

#include "lib/base/feature.hpp"

namespace wpckpt::tracker {

std::vector<FeatureProbe> kernel_probes();

}  // namespace wpckpt::tracker
