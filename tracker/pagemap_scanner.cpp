#include "tracker/pagemap_scanner.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <string>

#include "tracker/range_text.hpp"

namespace wpckpt::tracker {

using uapi::PageRegion;
using uapi::PmScanArg;

Result<PagemapScanner> PagemapScanner::open(pid_t pid, size_t vec_len) {
  std::string path = "/proc/" + std::to_string(pid) + "/pagemap";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open", path);
  return PagemapScanner(std::move(fd), vec_len);
}

PagemapScanner::PagemapScanner(UniqueFd fd, size_t vec_len)
    : fd_(std::move(fd)), vec_(new uapi::PageRegion[vec_len]), vec_len_(vec_len) {}

Result<void> PagemapScanner::scan(const ScanRequest& request, const RegionFn& fn) {
  PageRegion pending{0, 0, 0};
  auto emit = [&](const PageRegion& r) {
    if (pending.end == r.start && pending.categories == r.categories && pending.end != 0) {
      pending.end = r.end;
      return;
    }
    if (pending.end != 0) fn(pending);
    pending = r;
  };
  uint64_t cursor = request.start;
  while (cursor < request.end) {
    PmScanArg arg{};
    arg.size = sizeof arg;
    arg.flags = (request.write_protect ? uapi::kPmScanWpMatching : 0) |
                (request.check_wp_async ? uapi::kPmScanCheckWpasync : 0);
    arg.start = cursor;
    arg.end = request.end;
    arg.vec = reinterpret_cast<uint64_t>(vec_.get());
    arg.vec_len = vec_len_;
    arg.category_mask = request.category_mask;
    arg.category_anyof_mask = request.category_anyof_mask;
    arg.category_inverted = request.category_inverted;
    arg.return_mask = request.return_mask;
    ++calls_;
    long n = ioctl(fd_.get(), uapi::kPagemapScan, &arg);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("PAGEMAP_SCAN", range_text(cursor, request.end));
    }
    for (long i = 0; i < n; ++i) emit(vec_[static_cast<size_t>(i)]);
    // A vector that did not fill means the walk reached the end, whatever
    // walk_end says: it can keep a stale value from the kernel's internal
    // 512-region flushes (docs/KERNEL.md §3 and §11).
    if (static_cast<size_t>(n) < vec_len_) break;
    // Full vector: pages past walk_end were neither reported nor protected.
    uint64_t next = arg.walk_end;
    uint64_t last_end = vec_[vec_len_ - 1].end;
    if (next <= cursor) next = last_end;
    if (next <= cursor) return make_error(EIO, "PAGEMAP_SCAN made no progress", range_text(cursor, request.end));
    cursor = next;
  }
  if (pending.end != 0) fn(pending);
  return ok();
}

Result<std::vector<PageRegion>> PagemapScanner::scan(const ScanRequest& request) {
  std::vector<PageRegion> out;
  WPCKPT_TRY(scan(request, [&](const PageRegion& r) { out.push_back(r); }));
  return out;
}

}  // namespace wpckpt::tracker
