#include "tracker/iteration_scan.hpp"

#include <algorithm>
#include <chrono>

#include "tracker/uffd_ops.hpp"
#include "tracker/vma_query.hpp"

namespace wpckpt::tracker {
namespace {

using uapi::PageRegion;

constexpr uint64_t kHugeSparseBytes = 64ull << 30;

void classify(ScannedArea& area) {
  const Vma& v = area.vma;
  area.memory = classify_memory(v);
  area.file_backed = untouched_page_is_file_data(area.memory, v.shared);
  if (is_kernel_provided(area.memory)) {
    area.kind = AreaKind::NoContents;
    area.reason = "provided by the kernel";
  } else if (copied_whole(area.memory, v.shared)) {
    area.kind = AreaKind::CopiedWhole;
    area.reason = "shared memory: writes through other mappings are not tracked";
  } else if (contents_in_file(area.memory, v.shared)) {
    area.kind = AreaKind::NoContents;
    area.reason = "shared file: its contents live in the file";
  } else if (!v.read && !v.write && !v.exec && !area.registered) {
    // Reservations can be huge and sparse; protecting them would allocate
    // page tables for every GiB. If they become accessible, mprotect makes
    // them a new area that the next iteration registers.
    area.kind = AreaKind::PresentOnly;
    area.reason = "inaccessible (PROT_NONE): present pages only";
  } else if (v.size() > kHugeSparseBytes && !area.registered) {
    // Sanitizer shadows, GC heaps: tera-byte reservations.
    // A write-protect scan would install markers and page tables across all
    // of it (2 MiB per GiB, docs/KERNEL.md §3).
    area.kind = AreaKind::PresentOnly;
    area.reason = "huge reservation: present pages only";
  } else {
    area.kind = AreaKind::Tracked;
  }
}

// Makes a tracked area report every page at its next scan (a fresh scan,
// tracking_request): registered (a no-op when it already is) and, if it was
// registered before, unprotected, so that the markers of its never-touched
// pages read as zero again instead of as pages to copy. A newly registered
// area is not unprotected: the kernel keeps no uffd-wp bit in a VMA without
// uffd-wp (unregister, close, mremap and fork clear them; 6.9 and later),
// and the fresh scan asks for every present page whatever its bit, so a
// stray one would still be copied. That pass rewrote every page table entry
// of the area: 0.37 s of an 8 GiB full pre-dump, before any copy could
// start. When the area changed under us so that registration fails, it is
// left unregistered and copied by presence.
// With `defer_unprotect`, an area registered before keeps its protection
// here: FreshAreaChunks unprotects each chunk right before scanning it
// (a deferred area; the pass costs per page table entry like the scan).
void arm_whole(int uffd, VmaQuery& query, ScannedArea& area, std::string reason, uint64_t& registered,
               bool defer_unprotect = false) {
  const Vma& v = area.vma;
  bool was_registered = area.registered;
  if (!query.edges_clean(v.start, v.end)) {
    // The program remapped this range since we read its maps: leave it to
    // the next iteration rather than split its new area.
    area.kind = AreaKind::PresentOnly;
    area.reason = "changed while being read: present pages, registered next time";
    return;
  }
  auto r = register_write_protect(uffd, v.start, v.end);
  if (r && was_registered && !defer_unprotect) r = unprotect(uffd, v.start, v.end);
  if (!r) {
    area.kind = AreaKind::PresentOnly;
    area.reason = "cannot be tracked (" + r.error().message() + "): present pages every time";
    return;
  }
  if (!was_registered) ++registered;
  area.fresh = true;
  area.reason = std::move(reason);
}

// A last iteration's area taken whole without arming it (IterationOptions::rearm).
void mark_whole(ScannedArea& area, std::string reason) {
  area.fresh = true;
  area.reason = std::move(reason);
}

// Before the scan: an area the uffd does not cover yet (new, moved, grown by
// brk, re-created) is registered and captured whole; so is every area when
// the marks cannot be trusted.
void arm(int uffd, VmaQuery& query, ScannedArea& area, bool trust_marks, uint64_t& registered, bool defer) {
  if (!area.registered) arm_whole(uffd, query, area, "new or changed area", registered);
  else if (!trust_marks) arm_whole(uffd, query, area, "write-protect marks not trusted", registered, defer);
}

// Whether fresh tracked areas are left to FreshAreaChunks (IterationOptions::defer_fresh).
bool defers_fresh(const IterationOptions& options) {
  return options.defer_fresh && options.rearm && !options.target_stopped;
}

// A fresh area asks for every category so that never-touched and discarded
// pages are known to be zero without reading them, and for every page that
// is written, present or swapped, so that a page is reported whether or not
// it is write-protected (arm_whole); WP_MATCHING protects the written ones,
// i.e. all that are not yet. An armed area asks for WRITTEN only: the
// kernel's fast path (docs/KERNEL.md §1), about 30x cheaper per page table;
// its written pages are all read, and the few that were discarded since
// read back as zeros.
ScanRequest tracking_request(const ScannedArea& area, uint64_t return_mask, bool rearm) {
  ScanRequest r;
  r.start = area.vma.start;
  r.end = area.vma.end;
  r.write_protect = rearm;
  r.check_wp_async = true;
  if (area.fresh) {
    r.category_anyof_mask = uapi::kPageIsWritten | uapi::kPageIsPresent | uapi::kPageIsSwapped;
    r.return_mask = return_mask;
  } else {
    r.category_mask = uapi::kPageIsWritten;
    r.return_mask = uapi::kPageIsWritten;
  }
  return r;
}

ScanRequest present_request(const Vma& v, uint64_t return_mask) {
  ScanRequest r;
  r.start = v.start;
  r.end = v.end;
  r.category_anyof_mask = uapi::kPageIsPresent | uapi::kPageIsSwapped;
  r.return_mask = return_mask;
  return r;
}

// A fresh area's regions without arming it: its present (and swapped)
// pages, the rest being zero — except in a private file mapping, where a
// page never touched holds file data that the image must store (an image
// gives a fresh page it does not store as zero): all of it is read then,
// as an armed scan reports it.
Result<std::vector<PageRegion>> whole_without_arming(PagemapScanner& scanner, const ScannedArea& area,
                                                     uint64_t return_mask) {
  if (area.file_backed) return std::vector<PageRegion>{{area.vma.start, area.vma.end, uapi::kPageIsWritten}};
  return scanner.scan(present_request(area.vma, return_mask));
}

// Named ranges closer than this are scanned by one PAGEMAP_SCAN call.
// Measured here (bench/events_bench, quiet machine): the walk costs 2-5 ns
// per page of a gap, a call ~7.5 us of fixed cost (mmap_lock, VMA lookup,
// argument copies), so gaps under a few thousand pages are cheaper to walk
// than to skip. Walking a gap is exact: it reports (and re-protects) only
// pages written there, which must be copied anyway.
constexpr uint64_t kJoinGapBytes = 2048 * kPageSize;

// Events mode: the tracking scan of an armed area, restricted to the named
// ranges inside it, near ones joined. Each call re-protects what it reports,
// like the full one.
Result<std::vector<PageRegion>> scan_named(PagemapScanner& scanner, const ScannedArea& area,
                                           const std::vector<AddressRange>& ranges, uint64_t return_mask, bool rearm,
                                           uint64_t& pages_scanned) {
  std::vector<PageRegion> out;
  auto it = std::upper_bound(ranges.begin(), ranges.end(), area.vma.start,
                             [](uint64_t a, const AddressRange& r) { return a < r.end; });
  while (it != ranges.end() && it->start < area.vma.end) {
    ScanRequest r = tracking_request(area, return_mask, rearm);
    r.start = std::max(it->start, area.vma.start);
    uint64_t end = it->end;
    for (++it; it != ranges.end() && it->start < area.vma.end && it->start <= end + kJoinGapBytes; ++it)
      end = std::max(end, it->end);
    r.end = std::min(end, area.vma.end);
    pages_scanned += (r.end - r.start) / kPageSize;
    WPCKPT_TRY(scanner.scan(r, [&](const PageRegion& reg) { out.push_back(reg); }));
  }
  return out;
}

Result<void> scan_area(int uffd, VmaQuery& query, PagemapScanner& scanner, ScannedArea& area,
                       const IterationOptions& options, uint64_t& registered, uint64_t& pages_scanned) {
  const uint64_t mask = options.return_mask;
  if (area.kind == AreaKind::Tracked && !options.rearm && area.fresh) {
    // A last iteration takes what it cannot trust whole without arming it.
    pages_scanned += area.vma.size() / kPageSize;
    WPCKPT_TRY_ASSIGN(area.regions, whole_without_arming(scanner, area, mask));
    return ok();
  }
  if (area.kind == AreaKind::Tracked && area.fresh && defers_fresh(options)) {
    area.deferred = true;  // FreshAreaChunks, during the copy
    pages_scanned += area.vma.size() / kPageSize;
    return ok();
  }
  if (area.kind == AreaKind::Tracked) {
    const std::vector<AddressRange>* only_ranges = options.only_ranges;
    bool named = only_ranges != nullptr && !area.fresh;
    if (!named) pages_scanned += area.vma.size() / kPageSize;
    auto regions = named ? scan_named(scanner, area, *only_ranges, mask, options.rearm, pages_scanned)
                         : scanner.scan(tracking_request(area, mask, options.rearm));
    if (!regions && regions.error().err == EPERM) {
      // Some VMA in the range lost its registration after we read the maps
      // (munmap+mmap, mremap): register what is there now, take it whole.
      if (!options.rearm) {
        mark_whole(area, "changed during the scan");
        if (named) pages_scanned += area.vma.size() / kPageSize;
        WPCKPT_TRY_ASSIGN(area.regions, whole_without_arming(scanner, area, mask));
        return ok();
      }
      arm_whole(uffd, query, area, "changed during the scan", registered);
      if (area.kind == AreaKind::Tracked) {
        if (named) pages_scanned += area.vma.size() / kPageSize;
        regions = scanner.scan(tracking_request(area, mask, true));
      }
    }
    if (area.kind == AreaKind::Tracked) {
      if (!regions) return std::move(regions).error();
      area.regions = std::move(regions).value();
      return ok();
    }
  }
  if (area.kind == AreaKind::PresentOnly) {
    area.fresh = true;
    WPCKPT_TRY_ASSIGN(area.regions, scanner.scan(present_request(area.vma, mask)));
  }
  if (area.kind == AreaKind::CopiedWhole) area.fresh = true;
  return ok();
}

// Runs: consecutive areas of one kind scanned by one call (when, see
// scan_iteration). The call's range crosses the areas between the
// members, and what it reports there is dropped.
enum class Run {
  None,
  Armed,        // armed and trusted: the WRITTEN-only request every member shares
  Inaccessible  // present-only because PROT_NONE and never registered: the present request
};

bool inaccessible(const Vma& v) { return !v.read && !v.write && !v.exec; }

Run run_of(const ScannedArea& a, const IterationOptions& options) {
  if (a.kind == AreaKind::Tracked && a.registered && !a.fresh && options.only_ranges == nullptr) return Run::Armed;
  if (a.kind == AreaKind::PresentOnly && !a.registered && inaccessible(a.vma)) return Run::Inaccessible;
  return Run::None;
}

// An inaccessible area at most this large holds few page tables to walk.
constexpr uint64_t kCrossableBytes = 1ull << 30;

// Whether a run's call may cross this non-member.
// - Armed: an area without async write-protect (so no member's marks live
//   in it) that we did not arm. With WP_MATCHING the kernel skips its VMA
//   without a walk; without (a last iteration) it walks it and reports its
//   pages as written, so only small inaccessible areas (guard regions,
//   arena reserves, which hold few page tables) are crossed then.
// - Inaccessible: an area with async write-protect when the call runs
//   (registered before, or armed now): the call requires "not WPALLOWED",
//   which the kernel tests per VMA, skipping these without a walk.
bool crossable(const ScannedArea& a, Run run, const IterationOptions& options) {
  switch (run) {
    case Run::Armed:
      if (a.registered || a.kind == AreaKind::Tracked) return false;
      return options.rearm || (inaccessible(a.vma) && a.vma.size() <= kCrossableBytes);
    case Run::Inaccessible: return a.kind == AreaKind::Tracked && (a.registered || options.rearm);
    case Run::None: break;
  }
  return false;
}

// Scans the run that areas[first] leads, if it leads one of two members or
// more, with one call: each member gets the parts of the regions inside it
// and is marked done. false: no run; the area is scanned on its own.
Result<bool> scan_run(PagemapScanner& scanner, std::vector<ScannedArea>& areas, std::vector<char>& done, size_t first,
                      const IterationOptions& options, uint64_t& pages_scanned) {
  Run run = run_of(areas[first], options);
  if (run == Run::None) return false;
  size_t last = first, members = 1;
  for (size_t i = first + 1; i < areas.size(); ++i) {
    if (run_of(areas[i], options) == run && !done[i]) {
      last = i;
      ++members;
    } else if (!crossable(areas[i], run, options)) {
      break;
    }
  }
  if (members < 2) return false;
  ScanRequest r;
  if (run == Run::Armed) {
    r = tracking_request(areas[first], options.return_mask, options.rearm);
    // No CHECK_WPASYNC: the crossed areas have none, and a member that
    // lost its own (only a running process can) is skipped, not an error.
    r.check_wp_async = false;
  } else {
    r = present_request(areas[first].vma, options.return_mask);
    r.category_mask = uapi::kPageIsWpallowed;
    r.category_inverted = uapi::kPageIsWpallowed;
  }
  r.end = areas[last].vma.end;
  auto member = [&](size_t i) { return run_of(areas[i], options) == run && !done[i]; };
  size_t next = first;
  WPCKPT_TRY(scanner.scan(r, [&](const PageRegion& reg) {
    while (next <= last && areas[next].vma.end <= reg.start) ++next;
    for (size_t i = next; i <= last && areas[i].vma.start < reg.end; ++i) {
      if (!member(i)) continue;
      uint64_t start = std::max(reg.start, areas[i].vma.start), end = std::min(reg.end, areas[i].vma.end);
      if (start < end) areas[i].regions.push_back({start, end, reg.categories});
    }
  }));
  for (size_t i = first; i <= last; ++i) {
    if (!member(i)) continue;
    if (run == Run::Armed) pages_scanned += areas[i].vma.size() / kPageSize;
    if (run == Run::Inaccessible) areas[i].fresh = true;  // as scan_area marks a present-only area
    done[i] = 1;
  }
  return true;
}

// Which address ranges lie in areas without async write-protect, i.e. not
// (or no longer) registered with the agent's uffd: one PAGEMAP_SCAN that
// selects pages NOT write-protect-allowed. Registered areas are skipped by
// the kernel without a page-table walk, so this costs what the new areas
// cost; /proc/PID/smaps ("uw") would walk every page table (60 ms per GiB).
Result<std::vector<PageRegion>> unregistered_ranges(PagemapScanner& scanner, const std::vector<Vma>& vmas) {
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const Vma& v : vmas) {
    if (classify_memory(v) == MemoryKind::Vsyscall) continue;  // not a VMA
    lo = std::min(lo, v.start);
    hi = std::max(hi, v.end);
  }
  if (lo >= hi) return std::vector<PageRegion>{};
  ScanRequest r;
  r.start = lo;
  r.end = hi;
  r.category_inverted = uapi::kPageIsWpallowed;
  r.category_mask = uapi::kPageIsWpallowed;
  r.return_mask = uapi::kPageIsWpallowed;
  return scanner.scan(r);
}

bool overlaps_any(const std::vector<PageRegion>& ranges, uint64_t start, uint64_t end) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), start,
                             [](uint64_t a, const PageRegion& r) { return a < r.end; });
  return it != ranges.end() && it->start < end;
}

}  // namespace

const char* area_kind_name(AreaKind kind) {
  switch (kind) {
    case AreaKind::Tracked: return "tracked";
    case AreaKind::PresentOnly: return "present-only";
    case AreaKind::CopiedWhole: return "copied-whole";
    case AreaKind::NoContents: return "no-contents";
  }
  return "?";
}

Result<IterationScan> scan_iteration(pid_t pid, int uffd, PagemapScanner& scanner, const IterationOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  IterationScan out;
  std::vector<Vma> vmas;
  if (options.areas) {
    vmas = *options.areas;
  } else {
    WPCKPT_TRY_ASSIGN(vmas, read_maps(pid));
  }
  uint64_t calls_before = scanner.ioctl_calls();
  WPCKPT_TRY_ASSIGN(std::vector<PageRegion> unregistered, unregistered_ranges(scanner, vmas));
  WPCKPT_TRY_ASSIGN(VmaQuery query, VmaQuery::open(pid));
  out.areas.reserve(vmas.size());
  for (Vma& v : vmas) {
    ScannedArea area;
    area.vma = std::move(v);
    area.registered = !overlaps_any(unregistered, area.vma.start, area.vma.end);
    classify(area);
    if (area.kind == AreaKind::Tracked && options.rearm)
      arm(uffd, query, area, options.trust_marks, out.areas_registered, defers_fresh(options));
    else if (area.kind == AreaKind::Tracked && !area.registered) mark_whole(area, "new or changed area");
    else if (area.kind == AreaKind::Tracked && !options.trust_marks) mark_whole(area, "write-protect marks not trusted");
    out.areas.push_back(std::move(area));
  }
  // All scans before any copy: each page is re-protected before it is read.
  // Runs (scan_run) while frozen, and in a re-arming scan of a running
  // process too: there each call that re-protects pages ends in a TLB
  // flush (16,000 calls, 0.6 s, at 32,000 areas), and a member replaced
  // mid-walk is skipped (WP_MATCHING skips VMAs without async
  // write-protect) rather than failing the call — it is a new area the
  // next iteration takes whole, as if replaced just after this scan.
  const bool runs = options.target_stopped || options.rearm;
  std::vector<char> done(out.areas.size(), 0);  // scanned by a run
  for (size_t i = 0; i < out.areas.size(); ++i) {
    if (done[i]) continue;
    if (runs) {
      WPCKPT_TRY_ASSIGN(bool in_run, scan_run(scanner, out.areas, done, i, options, out.pages_scanned));
      if (in_run) continue;
    }
    ScannedArea& area = out.areas[i];
    uint64_t scanned = 0;
    WPCKPT_TRY(scan_area(uffd, query, scanner, area, options, out.areas_registered, scanned));
    if (area.kind == AreaKind::Tracked) out.pages_scanned += scanned;
  }
  out.scan_calls = scanner.ioctl_calls() - calls_before;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

bool left_unprotected(const ScannedArea& area) {
  // classify() makes an area present-only only when it is not registered;
  // a registered one becomes present-only only when arm_whole fails.
  return area.registered && area.kind == AreaKind::PresentOnly;
}

FreshAreaChunks::FreshAreaChunks(int uffd, PagemapScanner& scanner, const ScannedArea& area, uint64_t return_mask)
    : uffd_(uffd), scanner_(scanner), area_(area), return_mask_(return_mask), at_(area.vma.start) {
  area_.regions.clear();
}

Result<void> FreshAreaChunks::next(std::vector<PageJob>& jobs) {
  if (done()) return ok();
  const uint64_t start = at_;
  // Chunks end on a huge-page boundary: a scan that protects part of a
  // transparent huge page splits it.
  constexpr uint64_t kHugePage = 2ull << 20;
  uint64_t end = std::min(area_.vma.end, (start + kChunkBytes) / kHugePage * kHugePage);
  // Registered before this iteration (arm_whole left it protected): its
  // never-touched pages hold markers that would read as pages to copy.
  Result<std::vector<PageRegion>> regions = make_error(EPERM, "scan", "not scanned");
  if (!area_.registered || unprotect(uffd_, start, end)) {
    ScanRequest r = tracking_request(area_, return_mask_, true);
    r.start = start;
    r.end = end;
    regions = scanner_.scan(r);
  }
  if (!regions && regions.error().err == EPERM) {
    changed_ = true;
    end = area_.vma.end;
    if (area_.file_backed) {
      regions = std::vector<PageRegion>{{start, end, uapi::kPageIsWritten}};
    } else {
      ScanRequest present = present_request(area_.vma, return_mask_);
      present.start = start;
      regions = scanner_.scan(present);
    }
  }
  if (!regions) return std::move(regions).error();
  area_.regions = std::move(regions).value();
  append_page_jobs(area_, jobs);
  at_ = end;
  return ok();
}

std::vector<PageJob> page_jobs(const ScannedArea& area) {
  std::vector<PageJob> jobs;
  append_page_jobs(area, jobs);
  return jobs;
}

void append_page_jobs(const ScannedArea& area, std::vector<PageJob>& jobs) {
  const size_t first = jobs.size();  // jobs of earlier areas are never extended
  auto add = [&](uint64_t start, uint64_t end, bool zero) {
    uint64_t pages = (end - start) / kPageSize;
    if (pages == 0) return;
    if (jobs.size() > first && jobs.back().zero == zero && jobs.back().addr + jobs.back().pages * kPageSize == start) {
      jobs.back().pages += pages;
    } else {
      jobs.push_back({start, pages, zero});
    }
  };
  switch (area.kind) {
    case AreaKind::NoContents: break;
    case AreaKind::CopiedWhole: add(area.vma.start, area.vma.end, false); break;
    case AreaKind::Tracked:
    case AreaKind::PresentOnly:
      for (const PageRegion& r : area.regions) {
        uint64_t c = r.categories;
        if (c & uapi::kPageIsGuard) continue;
        // Written but neither present nor swapped: discarded (DONTNEED, FREE)
        // or never touched, i.e. zero — except in a private file mapping,
        // where such a page reads back from the file. Regions from a
        // WRITTEN-only scan carry no other category: they are read.
        bool absent = (c & ~uapi::kPageIsWritten) != 0 && !(c & (uapi::kPageIsPresent | uapi::kPageIsSwapped));
        bool zero = (c & uapi::kPageIsPfnzero) || (absent && !area.file_backed);
        add(r.start, r.end, zero);
      }
      break;
  }
}

}  // namespace wpckpt::tracker
