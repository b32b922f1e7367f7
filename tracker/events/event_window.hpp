// What the event queue says happened in a tracked process between two
// moments, and which address ranges an events-mode scan must look at.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wpckpt::tracker {

struct AddressRange {
  uint64_t start = 0, end = 0;  // page aligned, half open
};

struct EventWindow {
  double start_s = 0, end_s = 0;     // CLOCK_MONOTONIC seconds
  std::vector<uint64_t> pages;       // distinct pages with a write fault, ascending
  // Ranges whose pages may have changed without a write fault: emptied by
  // madvise (DONTNEED, FREE, REMOVE, ...) or moved/grown by mremap. Every
  // MADV_FREE range seen since the reader started is repeated in every
  // window: the kernel may discard those pages at any later time.
  std::vector<AddressRange> ranges;
  uint64_t faults = 0;   // write-fault records (one per armed page written, plus first touches)
  uint64_t changes = 0;  // address-space changes: mmap, munmap, mremap, brk, madvise, mprotect, fork
  uint64_t forks = 0;
  uint64_t lost = 0;     // records the kernel dropped because the ring was full
  // Why this window may not name every written page; "" when it does.
  std::string incomplete;

  double seconds() const { return end_s > start_s ? end_s - start_s : 0; }
  bool complete() const { return incomplete.empty(); }
};

// Sorts and merges ranges; ranges closer than `join_gap` bytes become one
// (a scan over a short gap costs less than another ioctl).
std::vector<AddressRange> merge_ranges(std::vector<AddressRange> ranges, uint64_t join_gap = 0);

// The ranges an events-mode scan covers: the pages and ranges of this window
// and of the one before it (a fault recorded just before the previous scan
// may have completed after that scan passed its page), merged.
std::vector<AddressRange> ranges_to_scan(const EventWindow& now, const EventWindow& before);

}  // namespace wpckpt::tracker
