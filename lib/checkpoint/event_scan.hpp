// Events-mode pre-dumps: when the event queue saw everything since the
// parent's scan, scan (and re-protect) only the ranges it names, so the
// cost follows the pages written instead of the address space.
//
// The rule (a window is what the reader collected between two scans):
//  - the caller's reader has been alive since before the parent's scan, and
//    its previous take was just before that scan (same epoch);
//  - this window and the previous one are complete (no lost record, no
//    outside access, no pinning writer, no exec: event_reader.hpp);
//  - the scan covers this window's pages and ranges and the previous one's
//    (a fault that began before the last take may end after that scan),
//    and the areas the parent's iteration left unprotected (whole).
// Otherwise the full scan runs as always, and says why.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "tracker/events/event_reader.hpp"
#include "tracker/iteration_scan.hpp"
#include "tracker/pagemap_scanner.hpp"

namespace wpckpt::checkpoint {

// Owned by the caller across iterations (`wpckpt iterate`), next to its reader.
struct EventTracking {
  tracker::EventReader* reader = nullptr;
  // Also run a read-only full scan after the events scan and fail the
  // iteration, naming the pages, if anything was written that the events
  // did not name.
  bool cross_check = false;
  // Kept by capture_memory between iterations.
  tracker::EventWindow previous;
  uint64_t taken_before_epoch = 0;  // the scan that followed the last take (0: none yet)
  // Areas the last iteration left registered but not (wholly) write-
  // protected: a fresh area that changed while it was copied
  // (FreshAreaChunks::changed) or a registered one it could not arm again
  // (tracker::left_unprotected). A write to an unprotected page raises no
  // fault, so no event will ever name it, yet the kernel reports it as
  // written until a scan re-protects it: the next events-mode scan covers
  // these whole, as a full scan would. Consumed by plan_scan.
  std::vector<tracker::AddressRange> unprotected;
};

struct ScanPlan {
  bool events = false;
  std::string reason;  // why events mode, or why the full scan
  tracker::EventWindow window;
  std::vector<tracker::AddressRange> ranges;  // what an events-mode scan covers
};

// Takes the reader's window (always, so the next iteration has a boundary
// right before this scan) and decides the mode. `distrust`: why the parent's
// marks cannot be trusted ("" when they can); `epoch`: the scan about to run.
ScanPlan plan_scan(EventTracking* tracking, const std::string& distrust, uint64_t epoch);

// After an events-mode scan with cross_check: every tracked, armed area is
// read (without re-protecting) for pages written outside the named ranges
// that no later event explains. Fails naming them.
Result<void> cross_check_scan(tracker::PagemapScanner& scanner, const tracker::IterationScan& scan,
                              const ScanPlan& plan, EventTracking& tracking);

}  // namespace wpckpt::checkpoint
