// dump -R of a process tree through copy-on-write copies (snapshot_copy.hpp),
// so that the tree runs on as soon as every member's copy exists, not once
// every page is compressed and written.
//
// How: every member's memory is captured on a thread of its own. When a
// member's scan is done (capture_memory's copy_from_fork), its thread asks
// this thread for its copy, which is made here: ptrace works only from the
// thread that froze the members. Once every member has its copy (or had
// its few pages read frozen, or failed), the whole tree runs on at once
// (`let_run`), and the threads read their copies meanwhile. One instant for
// the whole tree, as a frozen dump has.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <vector>

#include "dump-format/image.hpp"
#include "lib/base/result.hpp"
#include "lib/checkpoint/memory_capture.hpp"
#include "lib/dump/snapshot_copy.hpp"
#include "lib/ptrace/freezer.hpp"

namespace wpckpt::dump {

struct SnapshotMember {
  pid_t pid = 0;
  const ptrace::Freezer* frozen = nullptr;
  image::ImageWriter* writer = nullptr;
  const nlohmann::json* parent = nullptr;              // the parent image's metadata
  const std::vector<tracker::Vma>* smaps = nullptr;    // read before the freeze
  checkpoint::CaptureStats capture;                    // out
  std::optional<ForkedCopy> copy;                      // out: released by the caller after the commit
};

struct TreeSnapshotTimes {
  std::chrono::steady_clock::time_point resumed;  // when the tree ran on
};

// Captures every member's memory; `let_run` is called once, on this thread,
// when the tree may run on (also when a member failed). `options` are each
// member's (progress is given to the first member only).
Result<TreeSnapshotTimes> capture_tree_snapshot(std::vector<SnapshotMember>& members,
                                                const checkpoint::CaptureOptions& options,
                                                const std::function<void()>& let_run);

}  // namespace wpckpt::dump
