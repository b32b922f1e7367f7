#include "tracker/events/event_window.hpp"

#include <algorithm>

namespace wpckpt::tracker {
namespace {

constexpr uint64_t kPage = 4096;
// Gaps up to this many pages are scanned rather than split into another
// PAGEMAP_SCAN call (an empty page table walk costs ~0.2 ns per page, a call ~1 us).
constexpr uint64_t kJoinGap = 64 * kPage;

void add_window(std::vector<AddressRange>& out, const EventWindow& w) {
  for (uint64_t p : w.pages) out.push_back({p, p + kPage});
  for (const AddressRange& r : w.ranges) {
    // madvise/mremap arguments need not be aligned when the call failed.
    uint64_t start = r.start & ~(kPage - 1);
    uint64_t end = (r.end + kPage - 1) & ~(kPage - 1);
    if (end > start) out.push_back({start, end});
  }
}

}  // namespace

std::vector<AddressRange> merge_ranges(std::vector<AddressRange> ranges, uint64_t join_gap) {
  std::sort(ranges.begin(), ranges.end(), [](const AddressRange& a, const AddressRange& b) { return a.start < b.start; });
  std::vector<AddressRange> out;
  for (const AddressRange& r : ranges) {
    if (r.end <= r.start) continue;
    if (!out.empty() && r.start <= out.back().end + join_gap) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

std::vector<AddressRange> ranges_to_scan(const EventWindow& now, const EventWindow& before) {
  std::vector<AddressRange> all;
  all.reserve(now.pages.size() + before.pages.size() + now.ranges.size() + before.ranges.size());
  add_window(all, now);
  add_window(all, before);
  return merge_ranges(std::move(all), kJoinGap);
}

}  // namespace wpckpt::tracker
