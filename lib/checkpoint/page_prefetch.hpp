// Reads, while the process still runs, the pages that an incremental dump
// is about to read in its freeze: those written since the last scan.
//
// Why: on a guest whose page tables are shadowed by the hypervisor (this
// machine's), the first read of a page the process wrote, by another
// process, costs a shadow fault: 2,700 freshly written pages took 15-25 ms
// to read with process_vm_readv the first time and 4-6 ms the second (even
// after the process wrote them again). Read once before the freeze, the
// freeze's own read of them is the fast one. Elsewhere it costs little: a
// scan that changes nothing and a read before the freeze, never in it.
//
// Best effort and read-only: nothing is registered, protected or
// unprotected (the scan of a last iteration, IterationOptions::rearm
// false), nothing is kept, and a failure only means no prefetch.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "lib/base/result.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::checkpoint {

struct PrefetchStats {
  uint64_t pages_read = 0;  // at most max_pages
  double seconds = 0;
};

// `areas`: the process's, read just before (null: read here); `uffd`: the
// tracking descriptor (tracker::AgentLink::uffd()). Reads at most
// `max_pages`, in address order: a bound on the time added before the freeze.
Result<PrefetchStats> prefetch_written_pages(pid_t pid, int uffd, const std::vector<tracker::Vma>* areas,
                                             uint64_t max_pages);

// The same as a step of a dump, best effort: a failure is logged (debug)
// and counts as nothing read.
PrefetchStats prefetch_before_freeze(pid_t pid, int uffd, const std::vector<tracker::Vma>* areas,
                                     uint64_t max_pages);

// The bound a dump uses (a tree's members share it): 64 MiB of pages,
// ~0.15 s here at the worst.
constexpr uint64_t kPrefetchMaxPages = 16384;

// The pages the freeze after a prefetch is expected to copy, to size the
// writer's buffers before it (ImageWriter::warm_up): what the prefetch read
// plus what the process may write until the freeze (an eighth more), or the
// parent's delta when that is larger. Sized by the parent's delta alone, a
// final dump that found more pages (828 against 669) made a batch's buffers
// inside its freeze: ~2 ms of first touches there. The writer is warmed by
// the parent's delta before the prefetch and topped up after it: warming
// between the prefetch and the freeze delays the freeze, and what the
// process writes meanwhile is read there without a prefetch.
constexpr uint64_t expected_delta_pages(uint64_t parent_delta, uint64_t prefetched) {
  const uint64_t from_prefetch = prefetched > 0 ? prefetched + prefetched / 8 + 32 : 0;
  return parent_delta > from_prefetch ? parent_delta : from_prefetch;
}

}  // namespace wpckpt::checkpoint
