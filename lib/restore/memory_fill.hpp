// Fills the rebuilt address space with the chain's contents: stored runs are
// placed with UFFDIO_COPY in fresh anonymous memory (uffd_fill.hpp) and
// written through /proc/PID/mem elsewhere (it writes read-only private pages
// too, so no protection change is needed), except pages that a private file
// mapping already holds: those stay the file's, shared with the page cache.
// Zero runs cost nothing in fresh anonymous memory and are written as zeros
// over file-backed private pages.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "dump-format/image.hpp"
#include "lib/base/progress.hpp"
#include "lib/base/result.hpp"
#include "lib/restore/uffd_fill.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

struct FillStats {
  uint64_t pages_stored = 0;  // pages written from the image
  uint64_t pages_zero = 0;    // zero pages (written only over file pages)
  uint64_t pages_copied = 0;  // of pages_stored, placed with UFFDIO_COPY (uffd_fill.hpp)
  uint64_t pages_kept = 0;    // stored or zero pages a private file mapping already held: not written
  uint64_t bytes_written = 0;
  double seconds = 0;
};

// `mappings` in address order, as they were just mapped in the target;
// `uffd` (may be null) places the pages of the mappings it registered.
Result<FillStats> fill_memory(const image::ImageChain& chain, int mem_fd, UffdFill* uffd,
                              const std::vector<state::Mapping>& mappings, const ProgressFn& progress);

// The same for these mappings only, reading only their pages' frames (the
// eager part of a lazy restore, lazy_restore.hpp): stored pages written,
// zero pages written where the mapping does not start zeroed.
Result<FillStats> fill_mappings(const image::ImageChain& chain, int mem_fd, const std::vector<state::Mapping>& mappings);

// True when zero pages of this mapping need no write: it was just created
// as fresh anonymous memory (tracker::restored_zeroed).
bool starts_zeroed(const state::Mapping& m);

}  // namespace wpckpt::restore
