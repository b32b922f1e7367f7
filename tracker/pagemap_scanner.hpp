// PAGEMAP_SCAN on /proc/PID/pagemap (docs/KERNEL.md §3), with the walk
// resumed until the whole range is covered even when the output vector
// fills, and the walk_end quirks handled.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/uapi/pagemap_scan.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::tracker {

struct ScanRequest {
  uint64_t start = 0, end = 0;  // page aligned
  // Re-protect every reported page in the same atomic step (PM_SCAN_WP_MATCHING).
  bool write_protect = false;
  // Fail with EPERM when a VMA in the range has no async write-protect
  // instead of skipping it silently: an area replaced under our feet.
  bool check_wp_async = false;
  uint64_t category_mask = 0, category_anyof_mask = 0, category_inverted = 0;
  uint64_t return_mask = 0;
};

// What a tracking scan asks back for each written region. The kernel refuses
// (EINVAL) a category it does not know: a caller drops the optional ones
// (PFNZERO: zero pages are then read and found zero by the writer; GUARD:
// guard regions are then not seen) when the kernel lacks them.
constexpr uint64_t kScanReturnMask = uapi::kPageIsWritten | uapi::kPageIsPresent | uapi::kPageIsSwapped |
                                     uapi::kPageIsPfnzero | uapi::kPageIsGuard;

class PagemapScanner {
 public:
  // vec_len: regions one ioctl may return (a longer walk takes more calls).
  static Result<PagemapScanner> open(pid_t pid, size_t vec_len = kDefaultVecLen);
  explicit PagemapScanner(UniqueFd fd, size_t vec_len = kDefaultVecLen);
  static constexpr size_t kDefaultVecLen = 4096;

  // Regions in ascending order, adjacent ones with equal categories merged.
  using RegionFn = std::function<void(const uapi::PageRegion&)>;
  Result<void> scan(const ScanRequest& request, const RegionFn& fn);
  Result<std::vector<uapi::PageRegion>> scan(const ScanRequest& request);

  uint64_t ioctl_calls() const { return calls_; }

 private:
  UniqueFd fd_;
  // Left uninitialised: only the kernel writes it, and only as far as it
  // reports, so a scan that finds little touches few of its pages (a first
  // touch costs ~10 us a page here, and scans run while the process is frozen).
  std::unique_ptr<uapi::PageRegion[]> vec_;
  size_t vec_len_ = 0;
  uint64_t calls_ = 0;
};

}  // namespace wpckpt::tracker
