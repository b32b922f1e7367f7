// Behavioural probes of the process machinery: pidfds, process_vm_readv,
// ptrace seize, clone3 with set_tid, PR_SET_MM_MAP, capabilities, rseq, BPF.
#pragma once

#include <vector>

#include "lib/base/feature.hpp"

namespace wpckpt::probe {

std::vector<FeatureProbe> process_probes();

}  // namespace wpckpt::probe
