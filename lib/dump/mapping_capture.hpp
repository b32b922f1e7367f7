// Every mapping of a frozen process as a state::Mapping: address, protection,
// shared/private, kind (tracker/memory_kind.hpp; files with their identity)
// and the guard regions inside it. The pages themselves are the image's memory part
// (lib/checkpoint/memory_capture.hpp); this is the layout restore rebuilds.
#pragma once

#include <sys/types.h>

#include <vector>

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {

struct MappingOptions {
  uint64_t skip_start = 0, skip_end = 0;  // an area to leave out (an injector's scratch area)
  // smaps read before the freeze: its VmFlags are reused for areas that are
  // still the same, so the frozen process's page tables are not walked.
  const std::vector<tracker::Vma>* smaps_before_freeze = nullptr;
  // The areas read in this freeze already (read_frozen_areas), shared with
  // the refusals, the injector and the memory scan: used instead of reading
  // maps again. Null: read here.
  const std::vector<tracker::Vma>* areas = nullptr;
};

// The areas of a frozen process with their VmFlags: from smaps read before
// the freeze where an area is still the same (or null: smaps now).
Result<std::vector<tracker::Vma>> read_frozen_areas(pid_t pid, const std::vector<tracker::Vma>* smaps_before_freeze);

Result<std::vector<state::Mapping>> capture_mappings(pid_t pid, const MappingOptions& options = {});

// Runs the kernel probes capture_mappings asks (each once per wpckpt
// process): called before a freeze so that they do not run inside it.
void probe_mapping_features();

}  // namespace wpckpt::dump
