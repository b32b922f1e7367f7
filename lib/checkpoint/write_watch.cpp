#include "lib/checkpoint/write_watch.hpp"

#include <algorithm>
#include <optional>

#include "tracker/agent_link.hpp"
#include "tracker/events/event_reader.hpp"
#include "tracker/page_reader.hpp"
#include "tracker/pagemap_scanner.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::checkpoint {
namespace {

constexpr uint64_t kPage = tracker::kPageSize;
constexpr size_t kBusiest = 5;

// Pages written since the last write-protect scan, in areas that have async
// write-protect: a read-only PAGEMAP_SCAN (nothing is re-protected).
Result<std::vector<uint64_t>> written_now(pid_t pid) {
  WPCKPT_TRY_ASSIGN(std::vector<tracker::Vma> vmas, tracker::read_maps(pid));
  WPCKPT_TRY_ASSIGN(tracker::PagemapScanner scanner, tracker::PagemapScanner::open(pid));
  std::vector<uint64_t> pages;
  for (const tracker::Vma& v : vmas) {
    if (v.name == "[vsyscall]") continue;
    tracker::ScanRequest r;
    r.start = v.start;
    r.end = v.end;
    r.category_mask = uapi::kPageIsWritten | uapi::kPageIsWpallowed;
    r.return_mask = uapi::kPageIsWritten;
    auto res = scanner.scan(r, [&](const uapi::PageRegion& reg) {
      for (uint64_t p = reg.start; p < reg.end; p += kPage) pages.push_back(p);
    });
    if (!res && res.error().err != EPERM && res.error().err != EINVAL) return std::move(res).error();
  }
  return pages;
}

class EventWriteWatch final : public WriteWatch {
 public:
  EventWriteWatch(pid_t pid, FreezeModel model, std::unique_ptr<tracker::EventReader> reader,
                  std::optional<tracker::AgentLink> link, std::vector<uint64_t> since_parent)
      : pid_(pid), model_(model), reader_(std::move(reader)), link_(std::move(link)),
        since_parent_(std::move(since_parent)) {
    if (link_) epoch_ = link_->last_scan();
  }

  Result<WatchSample> sample() override {
    tracker::EventWindow w = reader_->take_window();
    WatchSample s;
    s.interval_s = w.seconds();
    s.write_faults = w.faults;
    s.area_changes = w.changes;
    s.events_lost = w.lost;
    s.events_lost_total = reader_->lost_total();
    s.incomplete = w.incomplete;
    if (link_) {
      s.epoch = link_->last_scan();
      if (s.epoch != epoch_) {
        // A pre-dump re-protected what was written: start again from what
        // this interval wrote (an upper bound: some writes were before it).
        s.predump_seen = true;
        since_parent_.clear();
        epoch_ = s.epoch;
      }
    }
    size_t before = since_parent_.size();
    std::vector<uint64_t> merged;
    merged.reserve(before + w.pages.size());
    std::set_union(since_parent_.begin(), since_parent_.end(), w.pages.begin(), w.pages.end(),
                   std::back_inserter(merged));
    since_parent_ = std::move(merged);
    s.pages_first_written = since_parent_.size() - before;
    s.dirty_pages_per_s = s.interval_s > 0 ? static_cast<double>(s.pages_first_written) / s.interval_s : 0;
    s.pages_dirty_since_parent = since_parent_.size();
    s.predicted_dump_bytes = s.pages_dirty_since_parent * kPage;
    s.predicted_freeze_ms = model_.predict_s(s.pages_dirty_since_parent) * 1e3;
    fill_busiest(w, s);
    return s;
  }

 private:
  void fill_busiest(const tracker::EventWindow& w, WatchSample& s) {
    if (w.pages.empty()) return;
    auto vmas = tracker::read_maps(pid_);
    if (!vmas) return;
    for (const tracker::Vma& v : *vmas) {
      auto lo = std::lower_bound(w.pages.begin(), w.pages.end(), v.start);
      auto hi = std::lower_bound(lo, w.pages.end(), v.end);
      if (hi != lo) s.busiest.push_back({v.start, v.end, v.name, static_cast<uint64_t>(hi - lo)});
    }
    std::sort(s.busiest.begin(), s.busiest.end(),
              [](const AreaActivity& a, const AreaActivity& b) { return a.pages > b.pages; });
    if (s.busiest.size() > kBusiest) s.busiest.resize(kBusiest);
  }

  pid_t pid_;
  FreezeModel model_;
  std::unique_ptr<tracker::EventReader> reader_;
  std::optional<tracker::AgentLink> link_;
  std::vector<uint64_t> since_parent_;  // sorted, distinct
  uint64_t epoch_ = 0;
};

}  // namespace

Result<std::unique_ptr<WriteWatch>> WriteWatch::start(pid_t pid, FreezeModel model) {
  // The reader first: from here on every write is an event; the scan below
  // then sees everything written before (a page may be in both: a set).
  WPCKPT_TRY_ASSIGN(std::unique_ptr<tracker::EventReader> reader, tracker::EventReader::start(pid));
  std::optional<tracker::AgentLink> link;
  if (auto l = tracker::AgentLink::attach(pid)) link.emplace(std::move(l).value());
  WPCKPT_TRY_ASSIGN(std::vector<uint64_t> pages, written_now(pid));
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  return std::unique_ptr<WriteWatch>(
      std::make_unique<EventWriteWatch>(pid, model, std::move(reader), std::move(link), std::move(pages)));
}

}  // namespace wpckpt::checkpoint
