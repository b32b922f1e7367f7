#include "lib/restore/lazy_regions.hpp"

#include <algorithm>

namespace wpckpt::restore {

namespace {
constexpr uint64_t kPage = 4096;
}  // namespace

RegionMap::RegionMap(std::vector<LazyRegion> regions) : regions_(std::move(regions)) {
  std::sort(regions_.begin(), regions_.end(), [](const LazyRegion& a, const LazyRegion& b) { return a.start < b.start; });
}

LazyRegion* RegionMap::find(uint64_t addr) {
  auto it = std::upper_bound(regions_.begin(), regions_.end(), addr,
                             [](uint64_t a, const LazyRegion& r) { return a < r.start; });
  if (it == regions_.begin()) return nullptr;
  --it;
  return addr < it->end ? &*it : nullptr;
}

void RegionMap::split_at(uint64_t addr) {
  addr -= addr % kPage;
  LazyRegion* r = find(addr);
  if (!r || r->start == addr) return;
  LazyRegion tail;
  tail.start = addr;
  tail.end = r->end;
  tail.image_start = r->image_start + (addr - r->start);
  tail.wipe_on_fork = r->wipe_on_fork;
  const size_t keep = (addr - r->start) / kPage;
  tail.state.assign(r->state.begin() + static_cast<std::ptrdiff_t>(keep), r->state.end());
  r->state.resize(keep);
  r->end = addr;
  auto pos = std::upper_bound(regions_.begin(), regions_.end(), addr,
                              [](uint64_t a, const LazyRegion& x) { return a < x.start; });
  regions_.insert(pos, std::move(tail));
}

void RegionMap::remove(uint64_t start, uint64_t end) {
  for (LazyRegion& r : regions_) {
    uint64_t lo = std::max(start, r.start), hi = std::min(end, r.end);
    for (uint64_t a = lo - lo % kPage; a < hi; a += kPage) r.at(a) = PageState::Zero;
  }
}

void RegionMap::unmap(uint64_t start, uint64_t end) {
  split_at(start);
  split_at(end);
  std::erase_if(regions_, [&](const LazyRegion& r) { return r.start >= start && r.end <= end; });
}

void RegionMap::remap(uint64_t from, uint64_t to, uint64_t len) {
  unmap(to, to + len);
  split_at(from);
  split_at(from + len);
  for (LazyRegion& r : regions_) {
    if (r.start < from || r.end > from + len) continue;
    r.start = r.start - from + to;
    r.end = r.end - from + to;
  }
  std::sort(regions_.begin(), regions_.end(), [](const LazyRegion& a, const LazyRegion& b) { return a.start < b.start; });
}

RegionMap RegionMap::forked() const {
  RegionMap child(regions_);
  for (LazyRegion& r : child.regions_)
    if (r.wipe_on_fork) std::fill(r.state.begin(), r.state.end(), PageState::Zero);
  return child;
}

uint64_t RegionMap::count(PageState s) const {
  uint64_t n = 0;
  for (const LazyRegion& r : regions_) n += static_cast<uint64_t>(std::count(r.state.begin(), r.state.end(), s));
  return n;
}

}  // namespace wpckpt::restore
