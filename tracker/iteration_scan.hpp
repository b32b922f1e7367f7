// One tracking iteration over a cooperating process: read its address space,
// register what is new with the agent's uffd (area by area: registration is
// all-or-nothing per call), and PAGEMAP_SCAN with write-protect matching to
// learn — and atomically re-protect — what was written since the last scan
// (or, for a last iteration, only learn it: IterationOptions::rearm).
// The caller copies the reported pages AFTER this returns (docs/KERNEL.md
// §3: the other order loses writes). Nothing here writes images.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/uapi/pagemap_scan.hpp"
#include "tracker/events/event_window.hpp"
#include "tracker/memory_kind.hpp"
#include "tracker/page_reader.hpp"
#include "tracker/pagemap_scanner.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::tracker {

enum class AreaKind {
  Tracked,      // private memory registered with the agent's uffd: deltas from scans
  PresentOnly,  // private memory left unregistered (PROT_NONE, or registration refused): present pages, every time
  CopiedWhole,  // shared memory: writes through other mappings are invisible, so all of it, every time
  NoContents,   // [vdso]/[vvar]/[vsyscall], device memory, shared files: nothing to store
};
const char* area_kind_name(AreaKind kind);  // "tracked", "present-only", "copied-whole", "no-contents"

struct ScannedArea {
  Vma vma;
  MemoryKind memory = MemoryKind::Anon;  // what it is (memory_kind.hpp)
  AreaKind kind = AreaKind::Tracked;     // how this iteration handles it
  bool registered = false;   // covered by the agent's uffd with async write-protect when the scan began
  bool fresh = false;        // captured whole this iteration: pages it does not store are zero
  bool file_backed = false;  // untouched_page_is_file_data(): an absent page holds file data, not zeros
  bool deferred = false;     // fresh and armed, not scanned: FreshAreaChunks scans it as it is copied
  std::string reason;        // why fresh, or why not tracked
  std::vector<uapi::PageRegion> regions;  // what the scan reported (Tracked, PresentOnly)
};

struct IterationScan {
  std::vector<ScannedArea> areas;  // address order
  uint64_t pages_scanned = 0;      // address space covered by tracking scans
  uint64_t areas_registered = 0;   // newly registered this iteration
  uint64_t scan_calls = 0;
  double seconds = 0;
};

struct IterationOptions {
  // false: write-protect marks cannot be trusted (no parent, an interrupted
  // iteration, a parent that is not the latest): every tracked area is
  // captured whole and re-armed.
  bool trust_marks = false;
  // Events mode: in registered areas whose marks are trusted, scan only
  // these ranges (ascending, disjoint: ranges_to_scan()), which the event
  // queue says hold every page written since the last scan. New, changed
  // and untracked areas are handled as always. nullptr: scan everything.
  const std::vector<AddressRange>* only_ranges = nullptr;
  // Categories a fresh area's scan asks for: kScanReturnMask without what the kernel lacks.
  uint64_t return_mask = kScanReturnMask;
  // false: the last iteration (the process is killed after it). Nothing is
  // registered, unprotected or re-protected: trusted areas report what was
  // written without re-arming, the others their present pages. The scan
  // changes no page table, so it costs no TLB flush (one per written 2 MiB
  // otherwise, the bulk of a frozen delta scan on this guest) and leaves the
  // marks of the last re-arming scan as they were if the dump fails.
  bool rearm = true;
  // The process's areas as read in this freeze (it cannot have changed
  // them since); null: /proc/PID/maps is read here.
  const std::vector<Vma>* areas = nullptr;
  // The process is frozen: no area can be unmapped, replaced or
  // unregistered during the scan. Consecutive armed areas are then scanned
  // by one PAGEMAP_SCAN (a call costs ~2.5 us of fixed cost per area
  // otherwise: 80 ms of the freeze at 32,000 areas) also in a last
  // iteration (rearm false). A re-arming scan batches whether frozen or
  // not (scan_iteration says why that is exact for a running process).
  bool target_stopped = false;
  // A running process whose memory is copied right after (a pre-dump):
  // a fresh area is armed but not scanned here (ScannedArea::deferred);
  // the copy scans it chunk by chunk (FreshAreaChunks), each chunk just
  // before its pages are read. A page is then write-protected only from
  // shortly before its copy, not from the start of the iteration: the
  // process takes a write fault (~30 us on this guest) only for pages it
  // writes after their copy, which the next delta must take anyway, and
  // the copy starts without waiting for a scan of all the memory. Only
  // with rearm, and ignored while the process is stopped (no faults to
  // save, and a freeze must not wait for the copy's scans).
  bool defer_fresh = false;
};

Result<IterationScan> scan_iteration(pid_t pid, int uffd, PagemapScanner& scanner, const IterationOptions& options);

// Whether the scan left the area (or part of it) registered without
// write-protecting it: an area registered before that arm_whole could not
// take whole again (it changed, or unprotecting it failed), read by
// presence instead. Its pages written since their last protection stay
// unprotected: the kernel reports them written at every scan until one
// re-protects them, but writing them again raises no fault, so an
// events-mode scan must cover such an area whole (EventTracking).
bool left_unprotected(const ScannedArea& area);

// What to copy, in address order: pages to read and pages known to be zero.
struct PageJob {
  uint64_t addr = 0, pages = 0;
  bool zero = false;
};

// The scan of a deferred area (IterationOptions::defer_fresh), chunk by
// chunk in address order, each chunk re-protecting what it reports in the
// same step: the caller reads a chunk's pages before asking for the next.
// Exact as the whole scan is: a page written before its chunk's scan is
// reported (written or present) and read after it; one written after it
// faults and is reported by the next iteration.
class FreshAreaChunks {
 public:
  static constexpr uint64_t kChunkBytes = 32ull << 20;  // a scan of ~0.6 ms here, ~30 ms of copying
  FreshAreaChunks(int uffd, PagemapScanner& scanner, const ScannedArea& area, uint64_t return_mask);
  bool done() const { return at_ >= area_.vma.end; }
  // Scans the next chunk and appends its jobs to `jobs`.
  Result<void> next(std::vector<PageJob>& jobs);
  // The program replaced part of the area after it was armed (the scan found
  // a range without async write-protect, or it could not be unprotected):
  // the rest was read by presence, without protecting it; the next
  // iteration finds it unregistered and takes it whole, or finds what was
  // written since as written — by a full scan only: what stays registered
  // is unprotected, its writes raise no fault, and no event names them
  // (the caller tells the next events-mode scan, EventTracking::unprotected).
  bool changed() const { return changed_; }

 private:
  int uffd_;
  PagemapScanner& scanner_;
  ScannedArea area_;  // its regions: the chunk's
  uint64_t return_mask_;
  uint64_t at_;
  bool changed_ = false;
};

// The jobs of one area (GUARD regions are skipped; they are not memory),
// appended to `jobs` (one vector for all areas: no allocation per area).
void append_page_jobs(const ScannedArea& area, std::vector<PageJob>& jobs);
std::vector<PageJob> page_jobs(const ScannedArea& area);

}  // namespace wpckpt::tracker
