#include "lib/checkpoint/memory_capture.hpp"

#include <time.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "lib/base/log.hpp"
#include "lib/base/uapi/memory.hpp"
#include "lib/ptrace/may_trace.hpp"
#include "lib/probe/features.hpp"
#include "tracker/agent_link.hpp"
#include "tracker/iteration_scan.hpp"
#include "tracker/page_reader.hpp"
#include "tracker/pagemap_scanner.hpp"

namespace wpckpt::checkpoint {
namespace {

using tracker::AreaKind;
using tracker::PageJob;
using tracker::PageRun;
using tracker::ScannedArea;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kPage = uapi::kPageSize;
static_assert(image::kPageSize == uapi::kPageSize, "the image format and the kernel agree on the page size");
constexpr uint64_t kRunsPerRead = 1u << 14;  // bounds the run list handed to one read()

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

int64_t micros_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Kernel behaviour a delta relies on (KERNEL-FACTS section 5): without it
// some written pages go unreported, so every iteration is taken whole.
constexpr const char* kDeltaFeatures[] = {"uffd_wp_unpopulated", "discarded_pages_written"};

// Why the parent's delta cannot be trusted, or "" when it can.
std::string distrust_reason(const nlohmann::json* parent_metadata, const tracker::AgentLink& link, uint64_t& parent_ns) {
  for (const char* key : kDeltaFeatures) {
    if (!probe::has_feature(key)) return std::string("feature ") + key + " is missing or switched off (see `wpckpt check`)";
  }
  if (parent_metadata == nullptr) return "first iteration";
  const nlohmann::json& meta = *parent_metadata;
  if (!meta.is_object()) return "the parent image has no tracking record";
  auto it = meta.find("tracking");
  if (it == meta.end() || !it->is_object()) return "the parent image has no tracking record";
  const nlohmann::json& t = *it;
  if (t.value("token", std::string()) != hex64(link.token()))
    return "the parent image was taken with another agent (process restarted or not the same one)";
  uint64_t scan = t.value("epoch", uint64_t{0});
  if (scan != link.last_scan())
    return "the parent is not the latest iteration (epoch " + std::to_string(scan) + ", the process is at " +
           std::to_string(link.last_scan()) + "; an iteration after it failed or went elsewhere)";
  parent_ns = t.value("scan_time_ns", uint64_t{0});
  return {};
}

image::MemoryArea memory_area(const ScannedArea& a) {
  const tracker::Vma& v = a.vma;
  image::MemoryArea m;
  m.start = v.start;
  m.end = v.end;
  m.prot = v.prot_string();
  m.backing = tracker::memory_kind_name(a.memory);
  m.path = v.name;
  m.file_offset = v.offset;
  m.contents = a.kind != AreaKind::NoContents;
  // The file's identity only for a file (file_offset is the offset): at
  // 32,000 anonymous areas these members were 40 bytes of manifest each,
  // made and written inside a final dump's stop.
  m.attributes["tracking"] = tracker::area_kind_name(a.kind);
  if (v.inode != 0 || v.dev_major != 0 || v.dev_minor != 0) {
    m.attributes["dev"] = std::to_string(v.dev_major) + ":" + std::to_string(v.dev_minor);
    m.attributes["inode"] = v.inode;
  }
  if (a.fresh) m.attributes["fresh"] = true;
  if (!a.reason.empty()) m.attributes["reason"] = a.reason;
  return m;
}

// Streams the jobs into the writer: reads in bounded batches (the reader's
// buffer), zero runs as zero entries, all in ascending address order.
class PageStreamer {
 public:
  PageStreamer(image::ImageWriter& writer, tracker::PageReader& reader, CaptureStats& stats, const ProgressFn& progress,
               uint64_t total)
      : writer_(writer), reader_(reader), stats_(stats), progress_(progress), total_(total) {}

  Result<void> add(const PageJob& job) {
    if (job.zero) {
      WPCKPT_TRY(flush());
      WPCKPT_TRY(timed_write([&] { return writer_.add_zero_pages(job.addr, job.pages); }));
      stats_.pages_zero += job.pages;
      done(job.pages);
      return ok();
    }
    runs_.push_back({job.addr, job.pages});
    if (runs_.size() >= kRunsPerRead) return flush();
    return ok();
  }

  // Bytes read earlier (a snapshot's shared memory), in their place in the order.
  Result<void> add_read(uint64_t addr, std::span<const std::byte> data) {
    WPCKPT_TRY(flush());
    WPCKPT_TRY(timed_write([&] { return writer_.add_pages(addr, data); }));
    done(data.size() / kPage);
    return ok();
  }

  Result<void> flush() {
    if (runs_.empty()) return ok();
    auto t0 = Clock::now();
    double write_before = stats_.write_seconds;
    auto r = reader_.read(
        runs_,
        [&](uint64_t addr, std::span<const std::byte> data) -> Result<void> {
          WPCKPT_TRY(timed_write([&] { return writer_.add_pages(addr, data); }));
          done(data.size() / kPage);
          return ok();
        },
        [&](uint64_t addr, uint64_t pages) -> Result<void> {
          stats_.pages_unreadable += pages;
          stats_.pages_zero += pages;
          done(pages);
          return timed_write([&] { return writer_.add_zero_pages(addr, pages); });
        },
        // Straight into the writer's batch: no second copy.
        [&](size_t bytes) { return writer_.page_room(bytes / kPage); });
    stats_.copy_seconds += seconds_since(t0) - (stats_.write_seconds - write_before);
    runs_.clear();
    return r;
  }

 private:
  template <typename Fn>
  Result<void> timed_write(Fn fn) {
    auto t0 = Clock::now();
    auto r = fn();
    stats_.write_seconds += seconds_since(t0);
    return r;
  }
  void done(uint64_t pages) {
    done_ += pages;
    // An estimate (deferred areas) that fell short grows ahead of the count.
    if (done_ > total_) total_ = done_ + done_ / 8;
    if (progress_) progress_("copy", done_, total_);
  }

  image::ImageWriter& writer_;
  tracker::PageReader& reader_;
  CaptureStats& stats_;
  const ProgressFn& progress_;
  uint64_t total_, done_ = 0;
  std::vector<PageRun> runs_;
};

bool overlaps_any(const tracker::Vma& v, const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  for (const auto& [start, end] : ranges)
    if (start < v.end && v.start < end) return true;
  return false;
}

// A snapshot reads what a fork does not copy from the frozen process itself,
// before the fork: the pages of each job (keyed by its address) side by side
// in one buffer, which the kernel populates in one call with huge pages. A
// buffer per job, zero-filled page by page, cost ~13 us a page here: 4.4 ms
// of the freeze for 340 pages.
struct ReadBeforeFork {
  PageBuffer pages;
  std::map<uint64_t, std::span<const std::byte>> jobs;
};

Result<ReadBeforeFork> read_before_fork(pid_t pid, const std::vector<PageJob>& jobs, const std::vector<char>& which,
                                        const CaptureOptions& options) {
  ReadBeforeFork out;
  uint64_t bytes = 0;
  for (size_t k = 0; k < jobs.size(); ++k)
    if (which[k] && !jobs[k].zero) bytes += jobs[k].pages * kPage;
  if (bytes == 0) return out;
  if (options.frozen_read_buffer) out.pages = std::move(*options.frozen_read_buffer);
  if (!out.pages.reserve(bytes))
    return errno_error("allocate the buffer for pages read while frozen", std::to_string(bytes) + " bytes");
  WPCKPT_TRY_ASSIGN(tracker::PageReader reader,
                    tracker::PageReader::open(pid, tracker::PageReader::kDefaultBatchBytes,
                                              probe::has_feature("process_vm_readv")));
  // All the runs in one read (a few process_vm_readv calls, not one per
  // job: a delta of scattered pages is hundreds of one-page jobs).
  std::vector<tracker::PageRun> runs;
  std::vector<std::byte*> where;  // per run: its place in out.pages
  std::byte* at = out.pages.data();
  for (size_t k = 0; k < jobs.size(); ++k) {
    const PageJob& j = jobs[k];
    if (!which[k] || j.zero) continue;
    runs.push_back({j.addr, j.pages});
    where.push_back(at);
    out.jobs[j.addr] = {at, j.pages * kPage};
    at += j.pages * kPage;
  }
  size_t run = 0;  // the reader calls back in address order: the run holding addr
  auto place = [&](uint64_t addr) {
    while (addr >= runs[run].end()) ++run;
    return where[run] + (addr - runs[run].addr);
  };
  // The runs lie in out.pages in their order, so the reader reads each
  // batch straight into place: the room is what follows the last piece.
  std::byte* next = out.pages.data();
  WPCKPT_TRY(reader.read(
      runs,
      [&](uint64_t addr, std::span<const std::byte> data) -> Result<void> {
        // A piece never spans two runs: the reader hands each remote range out on its own.
        std::byte* to = place(addr);
        if (to != data.data()) std::memcpy(to, data.data(), data.size());
        next = to + data.size();
        return ok();
      },
      [&](uint64_t addr, uint64_t pages) -> Result<void> {  // a vanished page: zero
        std::memset(place(addr), 0, pages * kPage);
        next = place(addr) + pages * kPage;
        return ok();
      },
      [&](size_t bytes) { return std::span<std::byte>(next, std::min<size_t>(bytes, at - next)); }));
  return out;
}

}  // namespace

uint64_t scan_return_mask() {
  uint64_t mask = tracker::kScanReturnMask;
  if (!probe::has_feature("pagemap_scan_category_pfnzero")) mask &= ~uapi::kPageIsPfnzero;
  if (!probe::has_feature("pagemap_scan_category_guard")) mask &= ~uapi::kPageIsGuard;
  return mask;
}

uint64_t anon_memory_bytes(pid_t pid) {
  // RssAnon (kB): counters, no page-table walk.
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "re");
  if (!f) return 0;
  uint64_t rss_anon_kb = 0;
  char line[256];
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "RssAnon: %" SCNu64, &rss_anon_kb) == 1) break;
  std::fclose(f);
  return rss_anon_kb * 1024;
}

// The snapshot's choice (CaptureOptions::snapshot_copy): true to read every
// page to store while the process is frozen, no fork. Measured here
// (docs/KERNEL.md §17): the fork copies page tables at about 0.06-0.08 us per
// populated 4 KiB page (16-35 ms per GiB); reading a page from the frozen
// process into wpckpt costs about 1 us (the read and a copy into a buffer
// the kernel populated with huge pages: 0.35-0.43 ms for 340 pages; it was
// 4.5-5 us while each page of the buffer was faulted in one by one). So
// reading wins below about one page in 16 of the anonymous memory; capped
// at 64 MiB, the bytes it holds in wpckpt until they are written.
bool read_all_frozen(pid_t pid, const std::vector<PageJob>& jobs, CaptureOptions::SnapshotCopy how) {
  using How = CaptureOptions::SnapshotCopy;
  if (how != How::Auto) return how == How::ReadFrozen;
  uint64_t data_pages = 0;
  for (const PageJob& j : jobs)
    if (!j.zero) data_pages += j.pages;
  constexpr uint64_t kMaxBytes = 64ull << 20;
  if (data_pages * kPage > kMaxBytes) return false;
  return data_pages * 16 * kPage <= anon_memory_bytes(pid);
}

Result<CaptureStats> capture_memory(pid_t pid, image::ImageWriter& writer, const nlohmann::json* parent_metadata,
                                    const CaptureOptions& options) {
  CaptureStats stats;
  auto t_begin = Clock::now();
  std::optional<tracker::AgentLink> made;
  tracker::AgentLink* link_ptr = options.link;
  if (link_ptr == nullptr) {
    // Before and after taking the agent's descriptors (the pid may be reused
    // meanwhile): nothing of the process is read unless its user may.
    WPCKPT_TRY(ptrace::check_may_trace(pid));
    WPCKPT_TRY_ASSIGN(tracker::AgentLink attached, tracker::AgentLink::attach(pid));
    made.emplace(std::move(attached));
    link_ptr = &*made;
    WPCKPT_TRY(ptrace::check_may_trace(pid));
  } else if (link_ptr->pid() != pid || !link_ptr->alive()) {
    return make_error(ESRCH, "capture memory", "process " + std::to_string(pid) + " exited since its agent link was made");
  }
  tracker::AgentLink& link = *link_ptr;
  WPCKPT_TRY(link.lock());
  uint64_t parent_ns = 0;
  stats.whole_reason = distrust_reason(parent_metadata, link, parent_ns);
  stats.incremental = stats.whole_reason.empty();
  if (!stats.incremental) log::info("pid {}: capturing every area whole: {}", pid, stats.whole_reason);

  // From here on, marks older than this scan are gone: an image that never
  // commits leaves the process at this epoch, and no parent matches it.
  // A scan that re-arms nothing keeps the epoch (CaptureOptions::rearm).
  stats.epoch = link.last_scan() + (options.rearm ? 1 : 0);
  // The event window ends here, before the scan: a write after this point
  // faults on a page the scan re-protected, or lands before the scan sees it.
  ScanPlan plan = plan_scan(options.events, stats.whole_reason, stats.epoch);
  stats.scan_mode = plan.events ? "events" : "full";
  stats.scan_mode_reason = plan.reason;
  stats.event_faults = plan.window.faults;
  stats.events_lost = plan.window.lost;
  stats.event_window_seconds = plan.window.seconds();
  // A scan that re-arms nothing is no boundary: the pages written before
  // this take stay unprotected, and only a full scan finds them again.
  if (options.events) options.events->taken_before_epoch = options.rearm ? stats.epoch : 0;
  uint64_t scan_ns = realtime_ns();
  auto t_scan = Clock::now();
  if (options.rearm) link.begin_scan(stats.epoch, scan_ns);
  const uint64_t marks_ns = options.rearm ? scan_ns : link.last_scan_ns();
  WPCKPT_TRY_ASSIGN(tracker::PagemapScanner scanner, tracker::PagemapScanner::open(pid));
  if (options.progress) options.progress("scan", 0, 1);
  tracker::IterationOptions scan_options{.trust_marks = stats.incremental,
                                         .only_ranges = plan.events ? &plan.ranges : nullptr,
                                         .return_mask = scan_return_mask(),
                                         .rearm = options.rearm,
                                         .areas = options.target_stopped ? options.frozen_areas : nullptr,
                                         .target_stopped = options.target_stopped,
                                         .defer_fresh = !options.copy_from_fork};
  WPCKPT_TRY_ASSIGN(tracker::IterationScan scan, tracker::scan_iteration(pid, link.uffd(), scanner, scan_options));
  if (options.events) {
    options.events->previous = plan.window;
    for (const ScannedArea& a : scan.areas)
      if (tracker::left_unprotected(a)) options.events->unprotected.push_back({a.vma.start, a.vma.end});
    if (plan.events && options.events->cross_check) {
      WPCKPT_TRY(cross_check_scan(scanner, scan, plan, *options.events));
      stats.cross_checked = true;
    }
  }
  stats.scan_seconds = scan.seconds;
  stats.pages_scanned = scan.pages_scanned;
  stats.areas = scan.areas.size();
  stats.areas_registered = scan.areas_registered;

  auto t_jobs = Clock::now();
  std::vector<image::MemoryArea> areas;
  std::vector<PageJob> jobs;
  std::vector<char> before_fork;  // per job: read from the frozen process (snapshot)
  // Deferred areas (scanned as they are copied): where their jobs would be, and which.
  std::vector<std::pair<size_t, size_t>> deferred;
  uint64_t deferred_pages = 0;  // their size: what they may hold
  uint64_t to_copy = 0;
  areas.reserve(scan.areas.size());
  jobs.reserve(scan.areas.size());
  before_fork.reserve(scan.areas.size());
  for (size_t k = 0; k < scan.areas.size(); ++k) {
    const ScannedArea& a = scan.areas[k];
    areas.push_back(memory_area(a));
    if (a.kind != AreaKind::Tracked) {
      ++stats.areas_untracked;
      stats.untracked.push_back({a.vma.start, a.vma.end, a.vma.name, tracker::area_kind_name(a.kind), a.reason});
    }
    if (a.kind == AreaKind::NoContents) continue;
    if (a.fresh) WPCKPT_TRY(writer.add_fresh_range(a.vma.start, a.vma.end));
    if (a.deferred) {
      deferred.emplace_back(jobs.size(), k);
      deferred_pages += a.vma.size() / kPage;
      continue;
    }
    uint64_t area_pages = 0;
    // A fork shares shared memory (the process may write it once it runs
    // on) and leaves out or zeroes MADV_DONTFORK/WIPEONFORK areas.
    bool not_forked = a.kind == AreaKind::CopiedWhole || overlaps_any(a.vma, options.not_copied_by_fork);
    size_t first_job = jobs.size();
    tracker::append_page_jobs(a, jobs);
    before_fork.resize(jobs.size(), not_forked);
    for (size_t i = first_job; i < jobs.size(); ++i) area_pages += jobs[i].pages;
    to_copy += area_pages;
    if (!a.fresh) stats.pages_skipped_parent += a.vma.size() / kPage - area_pages;
  }
  writer.set_areas(std::move(areas));
  // Deferred areas hold about their resident anonymous pages (more when
  // private file mappings hold present file pages: the progress total
  // then grows as the count passes it). The writer sizes its batches by
  // this, the progress bar counts to it.
  const uint64_t expected =
      to_copy + (deferred.empty() ? 0 : std::min(deferred_pages, anon_memory_bytes(pid) / kPage));
  writer.expect_pages(expected);
  stats.pages_written = to_copy;

  pid_t copy_pid = pid;
  ReadBeforeFork early;
  if (options.copy_from_fork) {
    auto t_early = Clock::now();
    bool fork = !read_all_frozen(pid, jobs, options.snapshot_copy);
    if (!fork) before_fork.assign(jobs.size(), 1);
    stats.snapshot_mechanism = fork ? "fork-cow" : "read-frozen";
    WPCKPT_TRY_ASSIGN(early, read_before_fork(pid, jobs, before_fork, options));
    for (const auto& [addr, bytes] : early.jobs) stats.pages_read_before_fork += bytes.size() / kPage;
    auto t_fork = Clock::now();
    WPCKPT_TRY_ASSIGN(pid_t copy, options.copy_from_fork(fork));
    if (fork) copy_pid = copy;
    log::debug("snapshot, frozen (us): link+plan {}, scan {} ({} pages), jobs {} ({}), read frozen {} ({} pages), "
               "{} {}",
               micros_between(t_begin, t_scan), micros_between(t_scan, t_jobs), stats.pages_scanned,
               micros_between(t_jobs, t_early), jobs.size(), micros_between(t_early, t_fork),
               stats.pages_read_before_fork, fork ? "fork" : "resume", micros_between(t_fork, Clock::now()));
  }
  // A snapshot's copy is read through /proc/PID/mem, never process_vm_readv:
  // that one pins the pages (FOLL_PIN), and pinning a page the copy shares
  // copy-on-write with the process makes the kernel unshare it, i.e. copy it
  // (docs/KERNEL.md §17): a 16 GiB snapshot ran out of memory that way.
  auto t_copy = Clock::now();
  WPCKPT_TRY_ASSIGN(tracker::PageReader reader,
                    tracker::PageReader::open(copy_pid, tracker::PageReader::kDefaultBatchBytes,
                                              copy_pid == pid && probe::has_feature("process_vm_readv")));
  PageStreamer streamer(writer, reader, stats, options.progress, expected);
  // The deferred areas in their place in the address order: each chunk's
  // scan, then its pages read at once (not gathered with the next chunks').
  size_t next_deferred = 0;
  auto copy_deferred_up_to = [&](size_t job_index) -> Result<void> {
    for (; next_deferred < deferred.size() && deferred[next_deferred].first <= job_index; ++next_deferred) {
      const ScannedArea& a = scan.areas[deferred[next_deferred].second];
      tracker::FreshAreaChunks chunks(link.uffd(), scanner, a, scan_options.return_mask);
      std::vector<PageJob> part;
      while (!chunks.done()) {
        part.clear();
        auto t = Clock::now();
        WPCKPT_TRY(chunks.next(part));
        stats.scan_seconds += seconds_since(t);
        for (const PageJob& j : part) {
          stats.pages_written += j.pages;
          WPCKPT_TRY(streamer.add(j));
        }
        WPCKPT_TRY(streamer.flush());
      }
      if (chunks.changed()) {
        log::info("pid {}: area {:#x}-{:#x} changed while copied: its rest was read unprotected; the next iteration "
                  "takes it whole",
                  pid, a.vma.start, a.vma.end);
        // What stays registered of it is unprotected: no write fault, no
        // event. The next events-mode scan must look at all of it.
        if (options.events) options.events->unprotected.push_back({a.vma.start, a.vma.end});
      }
    }
    return ok();
  };
  for (size_t i = 0; i < jobs.size(); ++i) {
    WPCKPT_TRY(copy_deferred_up_to(i));
    const PageJob& j = jobs[i];
    auto it = early.jobs.find(j.addr);
    WPCKPT_TRY(it != early.jobs.end() ? streamer.add_read(j.addr, it->second) : streamer.add(j));
  }
  WPCKPT_TRY(copy_deferred_up_to(jobs.size()));
  WPCKPT_TRY(streamer.flush());
  WPCKPT_TRY(writer.pages_done());
  log::debug("memory capture of {} (us): link+plan {}, scan {} ({} pages), jobs {}, copy {} ({} pages)", pid,
             micros_between(t_begin, t_scan), micros_between(t_scan, t_jobs), stats.pages_scanned,
             micros_between(t_jobs, t_copy), micros_between(t_copy, Clock::now()), stats.pages_written);

  if (stats.incremental && scan_ns > parent_ns && parent_ns != 0)
    stats.dirty_rate_pages_per_s = static_cast<double>(stats.pages_written) / (static_cast<double>(scan_ns - parent_ns) / 1e9);
  writer.set_metadata("tracking", {{"token", hex64(link.token())},
                                   {"epoch", stats.epoch},
                                   {"scan_time_ns", marks_ns},
                                   {"pid", pid},
                                   {"incremental", stats.incremental},
                                   {"pages_written", stats.pages_written},
                                   {"whole_reason", stats.whole_reason},
                                   {"target_stopped", options.target_stopped},
                                   {"uffd_route", link.route()},
                                   {"uffd_features", link.features()}});
  return stats;
}

void probe_capture_features() {
  for (const char* key : kDeltaFeatures) probe::has_feature(key);
  scan_return_mask();
  probe::has_feature("process_vm_readv");
}

void fill_commit_stats(CaptureStats& stats, const image::CommitInfo& info) {
  stats.pages_stored = info.pages_stored;
  stats.pages_zero = info.pages_zero;
  stats.bytes_raw = info.bytes_raw;
  stats.bytes_compressed = info.bytes_compressed;
}

}  // namespace wpckpt::checkpoint
