// The live write behaviour of a tracked process from the event queue, with
// no write-protect scan: what `wpckpt watch` shows. One read-only
// PAGEMAP_SCAN at start learns what was written since the last pre-dump;
// after that only events are read.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/checkpoint/freeze_model.hpp"

namespace wpckpt::checkpoint {

struct AreaActivity {
  uint64_t start = 0, end = 0;
  std::string name;    // path or [heap]/[stack]/"" (anonymous)
  uint64_t pages = 0;  // distinct pages written in the interval
};

struct WatchSample {
  double interval_s = 0;
  uint64_t pages_first_written = 0;       // pages written for the first time since the last pre-dump, this interval
  double dirty_pages_per_s = 0;           // the same per second
  uint64_t pages_dirty_since_parent = 0;  // distinct pages written since the last pre-dump
  uint64_t write_faults = 0;              // write-fault records this interval
  uint64_t area_changes = 0;              // mmap, munmap, mremap, brk, madvise, mprotect, fork this interval
  uint64_t events_lost = 0, events_lost_total = 0;
  uint64_t epoch = 0;                     // the agent's scan number (0: no agent)
  bool predump_seen = false;              // a pre-dump happened during this interval
  std::vector<AreaActivity> busiest;      // up to 5, most pages first
  uint64_t predicted_dump_bytes = 0;      // raw bytes a dump now would store
  double predicted_freeze_ms = 0;
  std::string incomplete;                 // why figures may be too low ("" when complete)
};

class WriteWatch {
 public:
  static Result<std::unique_ptr<WriteWatch>> start(pid_t pid, FreezeModel model = {});
  virtual ~WriteWatch() = default;
  // Figures since the previous sample (or the start).
  virtual Result<WatchSample> sample() = 0;
};

}  // namespace wpckpt::checkpoint
