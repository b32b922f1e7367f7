// The memory part of one checkpoint iteration: tracker (what changed since
// the parent) glued to dump-format (the image). Used by `wpckpt pre-dump`
// (process running) and `wpckpt dump` (process frozen by the caller).
//
// Tracking epoch: the agent's state page holds the sequence number of the
// last scan that re-protected pages; each image records it with the uffd's
// token under metadata "tracking". A scan re-protects pages before they are
// safely in an image, so a delta is trusted only if the parent image
// recorded exactly the latest scan of this uffd; otherwise (no parent, a
// pre-dump that died after its scan, a parent that is not the latest, a
// restarted agent) every area is captured whole.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dump-format/image.hpp"
#include "lib/base/page_buffer.hpp"
#include "lib/base/progress.hpp"
#include "lib/base/result.hpp"
#include "lib/checkpoint/event_scan.hpp"
#include "tracker/agent_link.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::checkpoint {

struct CaptureOptions {
  bool target_stopped = false;  // the caller froze the process (dump): informational, recorded in metadata
  ProgressFn progress;          // phases "scan", "copy"
  // The caller's event queue, kept across iterations (event_scan.hpp):
  // scan only what it names when it saw everything. nullptr: full scan.
  EventTracking* events = nullptr;
  // A snapshot (lib/dump/snapshot_copy.hpp): called once the scan has
  // re-armed the tracking and what a fork would not copy was read (shared
  // memory, and the ranges below); returns a stopped copy of the process
  // whose memory is the rest as of this instant, the caller having let the
  // process run on. Empty: everything is read from the process itself.
  // Called with fork = false when every page to store was read from the
  // frozen process instead (see `snapshot_copy`): the caller only lets the
  // process run on, and returns 0.
  std::function<Result<pid_t>(bool fork)> copy_from_fork;
  // A snapshot's copy: the fork costs a page-table copy of all the memory
  // (about 35 ms per populated GiB here, docs/KERNEL.md §17) whatever the
  // delta; reading the delta's pages while frozen costs per page. Auto reads
  // them frozen when they are few against the anonymous memory (RssAnon) a
  // fork would copy the page tables of.
  enum class SnapshotCopy { Auto, Fork, ReadFrozen } snapshot_copy = SnapshotCopy::Auto;
  std::vector<std::pair<uint64_t, uint64_t>> not_copied_by_fork;  // MADV_DONTFORK / MADV_WIPEONFORK areas
  // A buffer made before the freeze for a snapshot's pages read while the
  // process is frozen (taken over): making one costs ~0.2 ms, more when the
  // kernel must compact memory for its huge page, which a frozen process
  // should not wait for. Other pages are read straight into the writer's
  // batches (ImageWriter::page_room), warmed before the freeze.
  PageBuffer* frozen_read_buffer = nullptr;
  // The process's agent link, made by the caller before its freeze (attach
  // reads /proc/PID/fd and maps the state page: 0.1-0.3 ms a frozen process
  // need not wait for); checked to be the same process. Null: made here.
  tracker::AgentLink* link = nullptr;
  // The process's areas, read in this freeze (before any injection: an
  // injector's scratch area is unmapped again before the scan): the scan
  // takes them instead of reading maps again. Only with target_stopped;
  // null: read by the scan.
  const std::vector<tracker::Vma>* frozen_areas = nullptr;
  // false: a killing dump, the last iteration. It re-protects nothing
  // (tracker::IterationOptions::rearm): a frozen scan without page-table
  // changes, and a dump that fails leaves the process at the parent's
  // epoch with its marks as they were, so the next delta is still exact.
  // The image records the parent's epoch: a delta against it (possible
  // only if the kill never happened) re-sends what this one holds.
  bool rearm = true;
};

// An area not tracked by write-protect, and how it is handled instead.
struct UntrackedArea {
  uint64_t start = 0, end = 0;
  std::string path;
  std::string handling;  // "present-only", "copied-whole", "no-contents"
  std::string reason;
  std::vector<int> pids;  // a tree's processes that have this same area (empty for one process)
};

struct CaptureStats {
  uint64_t pages_scanned = 0;         // address space covered by tracking scans
  uint64_t pages_written = 0;         // pages this image has an entry for (data or zero)
  uint64_t pages_stored = 0;          // filled from CommitInfo by fill_commit_stats()
  uint64_t pages_zero = 0;            // zero entries known at capture (writer adds detected ones)
  uint64_t pages_skipped_parent = 0;  // covered pages left to the parent (not written since)
  uint64_t bytes_raw = 0, bytes_compressed = 0;  // from CommitInfo
  double scan_seconds = 0, copy_seconds = 0, write_seconds = 0;
  double dirty_rate_pages_per_s = 0;  // pages written since the parent's scan / seconds since it (0 without parent)
  // Tracking details for --json and logs.
  bool incremental = false;      // a delta against the parent (false: captured whole)
  std::string whole_reason;      // why not incremental
  uint64_t epoch = 0;            // this iteration's scan number
  uint64_t areas = 0, areas_registered = 0, areas_untracked = 0;
  uint64_t pages_unreadable = 0; // vanished while copying; stored as zero
  std::vector<UntrackedArea> untracked;
  // Events mode (event_scan.hpp): "events" or "full", and why.
  std::string scan_mode = "full";
  std::string scan_mode_reason;
  uint64_t event_faults = 0;      // write-fault records since the previous take
  uint64_t events_lost = 0;       // records lost since the previous take
  double event_window_seconds = 0;
  bool cross_checked = false;     // a full read-only scan confirmed the events missed nothing
  uint64_t pages_read_before_fork = 0;  // snapshot: pages read from the frozen process itself
  std::string snapshot_mechanism;       // snapshot: "fork-cow" or "read-frozen"
};

// The anonymous memory the process has in RAM (RssAnon of
// /proc/PID/status: counters, no page-table walk); 0 if unreadable.
uint64_t anon_memory_bytes(pid_t pid);

// Writes the memory part of one iteration into `writer` (set_areas,
// add_fresh_range, add_pages/add_zero_pages, metadata "tracking"): all
// present pages when there is no parent (`parent_metadata`, its manifest's
// metadata, is null) or it cannot be trusted, else the pages written since
// the parent. Does not commit.
Result<CaptureStats> capture_memory(pid_t pid, image::ImageWriter& writer, const nlohmann::json* parent_metadata,
                                    const CaptureOptions& options);

// The categories a scan may ask for on this kernel (and with these switches).
uint64_t scan_return_mask();

// Runs the kernel probes capture_memory asks (each once per wpckpt process):
// called before a freeze so that they do not run inside it.
void probe_capture_features();

// Copies pages_stored, pages_zero, bytes_raw and bytes_compressed from a commit.
void fill_commit_stats(CaptureStats& stats, const image::CommitInfo& info);

}  // namespace wpckpt::checkpoint
