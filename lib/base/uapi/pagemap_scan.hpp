// PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7+), absent from the 6.1
// headers. Values from include/uapi/linux/fs.h; see docs/KERNEL.md §1.
#pragma once

#include <cstdint>

namespace wpckpt::uapi {

constexpr unsigned long kPagemapScan = 0xC0606610;  // _IOWR('f', 16, struct pm_scan_arg)
constexpr uint64_t kPmScanWpMatching = 1ull << 0;
constexpr uint64_t kPmScanCheckWpasync = 1ull << 1;

// page categories
constexpr uint64_t kPageIsWpallowed = 1ull << 0;
constexpr uint64_t kPageIsWritten = 1ull << 1;
constexpr uint64_t kPageIsFile = 1ull << 2;
constexpr uint64_t kPageIsPresent = 1ull << 3;
constexpr uint64_t kPageIsSwapped = 1ull << 4;
constexpr uint64_t kPageIsPfnzero = 1ull << 5;
constexpr uint64_t kPageIsHuge = 1ull << 6;
constexpr uint64_t kPageIsSoftDirty = 1ull << 7;
constexpr uint64_t kPageIsGuard = 1ull << 8;

struct PmScanArg {
  uint64_t size;  // must be sizeof(PmScanArg) == 96
  uint64_t flags;
  uint64_t start, end;
  uint64_t walk_end;
  uint64_t vec, vec_len;
  uint64_t max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct PageRegion {
  uint64_t start, end, categories;  // end exclusive
  bool operator==(const PageRegion&) const = default;
};
static_assert(sizeof(PmScanArg) == 96);
static_assert(sizeof(PageRegion) == 24);

// Raw /proc/PID/pagemap entry bits.
constexpr uint64_t kPagemapPresent = 1ull << 63;
constexpr uint64_t kPagemapSwapped = 1ull << 62;
constexpr uint64_t kPagemapFileOrShared = 1ull << 61;
constexpr uint64_t kPagemapGuard = 1ull << 58;
constexpr uint64_t kPagemapUffdWp = 1ull << 57;
constexpr uint64_t kPagemapExclusive = 1ull << 56;
constexpr uint64_t kPagemapSoftDirty = 1ull << 55;

constexpr int kClearRefsSoftDirty = 4;  // value written to /proc/PID/clear_refs

}  // namespace wpckpt::uapi
