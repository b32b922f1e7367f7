// What a pre-dump or dump of a process tree reports per process, and the
// tree's totals as one capture's figures (the CLI prints them as for one process).
#pragma once

#include <cstdint>
#include <string>

#include "lib/checkpoint/memory_capture.hpp"

namespace wpckpt::dump {

struct TreeMemberReport {
  int pid = 0, ppid = 0;
  std::string comm;
  bool zombie = false;          // recorded, no image of its own
  size_t threads = 0;
  uint64_t pages_written = 0, bytes_compressed = 0;
  bool incremental = false;     // a delta against this process's parent image
};

// Adds `one` member's figures into the tree's `total`. The tree is
// incremental when every process that the parent image holds was captured as
// a delta: a process started since (`new_process`) is whole by necessity.
void add_capture(checkpoint::CaptureStats& total, const checkpoint::CaptureStats& one, int pid, bool new_process);

}  // namespace wpckpt::dump
