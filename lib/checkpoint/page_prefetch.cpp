#include "lib/checkpoint/page_prefetch.hpp"

#include <chrono>

#include "lib/base/log.hpp"
#include "lib/checkpoint/memory_capture.hpp"
#include "lib/probe/features.hpp"
#include "tracker/iteration_scan.hpp"
#include "tracker/page_reader.hpp"
#include "tracker/pagemap_scanner.hpp"

namespace wpckpt::checkpoint {

Result<PrefetchStats> prefetch_written_pages(pid_t pid, int uffd, const std::vector<tracker::Vma>* areas,
                                             uint64_t max_pages) {
  PrefetchStats stats;
  const auto t0 = std::chrono::steady_clock::now();
  WPCKPT_TRY_ASSIGN(tracker::PagemapScanner scanner, tracker::PagemapScanner::open(pid));
  tracker::IterationOptions options{.trust_marks = true,
                                    .return_mask = scan_return_mask(),
                                    .rearm = false,  // changes no page table: the freeze's scan finds the same
                                    .areas = areas};
  WPCKPT_TRY_ASSIGN(tracker::IterationScan scan, tracker::scan_iteration(pid, uffd, scanner, options));
  std::vector<tracker::PageRun> runs;
  uint64_t pages = 0;
  std::vector<tracker::PageJob> jobs;
  for (const tracker::ScannedArea& a : scan.areas) {
    if (a.kind == tracker::AreaKind::NoContents) continue;
    jobs.clear();
    tracker::append_page_jobs(a, jobs);
    for (const tracker::PageJob& j : jobs) {
      if (pages == max_pages) break;
      if (j.zero) continue;
      const uint64_t take = std::min(j.pages, max_pages - pages);
      runs.push_back({j.addr, take});
      pages += take;
    }
    if (pages == max_pages) break;
  }
  // A small buffer read into again and again: its own first touches are few.
  constexpr size_t kBufferBytes = 256 << 10;
  WPCKPT_TRY_ASSIGN(tracker::PageReader reader,
                    tracker::PageReader::open(pid, kBufferBytes, probe::has_feature("process_vm_readv")));
  WPCKPT_TRY(reader.read(
      runs,
      [&](uint64_t, std::span<const std::byte> data) -> Result<void> {
        stats.pages_read += data.size() / tracker::kPageSize;
        return ok();
      },
      [](uint64_t, uint64_t) -> Result<void> { return ok(); }));
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

PrefetchStats prefetch_before_freeze(pid_t pid, int uffd, const std::vector<tracker::Vma>* areas,
                                     uint64_t max_pages) {
  auto warmed = prefetch_written_pages(pid, uffd, areas, max_pages);
  if (warmed) return *warmed;
  log::debug("no prefetch of {}'s written pages: {}", pid, warmed.error().message());
  return {};
}

}  // namespace wpckpt::checkpoint
