#include "lib/checkpoint/event_scan.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace wpckpt::checkpoint {
namespace {

constexpr uint64_t kPage = tracker::kPageSize;

bool inside(const std::vector<tracker::AddressRange>& ranges, uint64_t addr) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), addr,
                             [](uint64_t a, const tracker::AddressRange& r) { return a < r.end; });
  return it != ranges.end() && it->start <= addr;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#" PRIx64, v);
  return buf;
}

}  // namespace

ScanPlan plan_scan(EventTracking* tracking, const std::string& distrust, uint64_t epoch) {
  ScanPlan plan;
  if (tracking == nullptr || tracking->reader == nullptr) {
    plan.reason = "no event reader alive since the parent (only `wpckpt iterate` keeps one)";
    return plan;
  }
  plan.window = tracking->reader->take_window();
  // Any scan about to run covers what the parent left unprotected: a full
  // one scans (and re-protects) every armed area, an events-mode one adds
  // them below, a distrusting one arms everything again.
  std::vector<tracker::AddressRange> unprotected = std::move(tracking->unprotected);
  tracking->unprotected.clear();
  bool same_boundary = tracking->taken_before_epoch != 0 && tracking->taken_before_epoch + 1 == epoch;
  if (!distrust.empty()) {
    plan.reason = "every area is captured whole: " + distrust;
  } else if (!same_boundary) {
    plan.reason = "the event reader was not running at the parent's scan";
  } else if (!plan.window.complete()) {
    plan.reason = plan.window.incomplete;
  } else if (!tracking->previous.complete()) {
    plan.reason = "the window before the parent was incomplete: " + tracking->previous.incomplete;
  } else {
    plan.events = true;
    plan.ranges = tracker::ranges_to_scan(plan.window, tracking->previous);
    plan.reason = "events complete since the parent: " + std::to_string(plan.window.pages.size()) +
                  " pages and " + std::to_string(plan.window.ranges.size()) + " ranges named";
    if (!unprotected.empty()) {
      plan.ranges.insert(plan.ranges.end(), unprotected.begin(), unprotected.end());
      plan.ranges = tracker::merge_ranges(std::move(plan.ranges));
      plan.reason += "; " + std::to_string(unprotected.size()) +
                     " areas the parent's iteration left unprotected (changed while armed or copied) scanned whole";
    }
  }
  return plan;
}

Result<void> cross_check_scan(tracker::PagemapScanner& scanner, const tracker::IterationScan& scan,
                              const ScanPlan& plan, EventTracking& tracking) {
  std::vector<uint64_t> suspects;
  for (const tracker::ScannedArea& a : scan.areas) {
    if (a.kind != tracker::AreaKind::Tracked || a.fresh) continue;
    tracker::ScanRequest r;
    r.start = a.vma.start;
    r.end = a.vma.end;
    r.check_wp_async = true;
    r.category_mask = uapi::kPageIsWritten;
    r.return_mask = uapi::kPageIsWritten;
    auto res = scanner.scan(r, [&](const uapi::PageRegion& reg) {
      for (uint64_t p = reg.start; p < reg.end; p += kPage)
        if (!inside(plan.ranges, p)) suspects.push_back(p);
    });
    if (!res && res.error().err != EPERM) return std::move(res).error();  // EPERM: the area changed meanwhile
  }
  // A page written after this iteration's take faulted after it: the reader
  // has it now. Those are not misses (the next iteration scans them).
  tracker::EventWindow later = tracking.reader->take_window();
  std::vector<tracker::AddressRange> explained;
  for (uint64_t p : later.pages) explained.push_back({p, p + kPage});
  for (const tracker::AddressRange& r : later.ranges) explained.push_back(r);
  explained = tracker::merge_ranges(std::move(explained));
  std::vector<uint64_t> missed;
  for (uint64_t p : suspects)
    if (!inside(explained, p)) missed.push_back(p);
  // The later records belong to the next iteration's window.
  tracking.previous.pages.insert(tracking.previous.pages.end(), later.pages.begin(), later.pages.end());
  std::sort(tracking.previous.pages.begin(), tracking.previous.pages.end());
  for (const tracker::AddressRange& r : later.ranges) tracking.previous.ranges.push_back(r);
  if (!later.complete() && tracking.previous.complete()) tracking.previous.incomplete = later.incomplete;
  if (missed.empty()) return ok();
  std::string first;
  for (size_t i = 0; i < missed.size() && i < 8; ++i) first += (i ? ", " : "") + hex(missed[i]);
  return Error{EIO, "cross-check of the events-mode scan",
               "(" + std::to_string(missed.size()) + " written pages the events did not name: " + first +
                   (missed.size() > 8 ? ", ..." : "") + ")",
               "this is a bug in the event queue (or a writer it cannot see); the image was not written. Run "
               "without --cross-check to fall back, and report the workload"};
}

}  // namespace wpckpt::checkpoint
