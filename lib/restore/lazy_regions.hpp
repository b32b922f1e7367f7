// The pager's picture of a lazily restored address space: which pages still
// wait for their image contents, which must read as zero, which are in.
// Addresses move (mremap) and disappear (munmap) while the process runs; the
// userfaultfd events tell the pager, and these functions keep the picture in
// step (docs/KERNEL.md §9).
#pragma once

#include <cstdint>
#include <vector>

namespace wpckpt::restore {

enum class PageState : uint8_t {
  Pending,  // not in yet: its image contents are due
  Zero,     // must read as zero (image zero, or discarded by the process since)
  Done,     // present (copied), or no longer ours to fill
};

struct LazyRegion {
  uint64_t start = 0, end = 0;  // where the pages are now
  uint64_t image_start = 0;     // where they were in the image (mremap moves start, not this)
  bool wipe_on_fork = false;    // MADV_WIPEONFORK: a fork child sees zeros here
  std::vector<PageState> state;  // one per page

  uint64_t image_end() const { return image_start + (end - start); }
  PageState& at(uint64_t addr) { return state[(addr - start) / 4096]; }
};

// Regions sorted by start, never overlapping.
class RegionMap {
 public:
  RegionMap() = default;
  explicit RegionMap(std::vector<LazyRegion> regions);

  std::vector<LazyRegion>& regions() { return regions_; }
  const std::vector<LazyRegion>& regions() const { return regions_; }
  LazyRegion* find(uint64_t addr);

  // MADV_DONTNEED / MADV_REMOVE: the pages read as zero from now on.
  void remove(uint64_t start, uint64_t end);
  // munmap: forget the range.
  void unmap(uint64_t start, uint64_t end);
  // mremap move of [from, from + len) to `to` (the destination was unmapped first).
  void remap(uint64_t from, uint64_t to, uint64_t len);
  // What a fork child inherits: pages present in the parent are present in
  // the child; wipe-on-fork regions read zero there.
  RegionMap forked() const;
  uint64_t count(PageState s) const;

 private:
  void split_at(uint64_t addr);
  std::vector<LazyRegion> regions_;
};

}  // namespace wpckpt::restore
