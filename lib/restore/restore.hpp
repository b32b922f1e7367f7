// `wpckpt restore`: the orchestration. Validate everything first; create the
// process with its pid (clone3 set_tid) and let it rebuild its descriptors,
// cwd, limits; seize it; rebuild the address space and fill it from the chain;
// create the threads with their tids; set every thread's state; detach.
// Any failure before the detach kills the new process and reaps it: nothing
// half-restored ever runs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dump-format/image.hpp"
#include "lib/base/progress.hpp"
#include "lib/base/result.hpp"
#include "lib/restore/tcp_policy.hpp"

namespace wpckpt::restore {

class LazyRestore;

struct RestoreOptions {
  bool detached = false;           // re-parent the process (to init or the nearest subreaper)
  bool allow_other_owner = false;  // accept images owned by another user
  bool shell_job = false;          // -j: a job of the restoring shell (lib/restore/session.hpp)
  bool lazy = false;               // anonymous memory served on demand (lib/restore/lazy_restore.hpp)
  TcpPolicy tcp = TcpPolicy::Refuse;  // established TCP connections (lib/restore/tcp_policy.hpp)
  bool network_lock = true;        // remove the dump's network lock once the process runs (--network-lock)
  ProgressFn progress;
  // Called once the image's pages are no longer needed: after the fill, or
  // with --lazy at the pager's end (all in, or the process ended), in the
  // pager (a forked process).
  std::function<void()> pages_complete;
};

// A process of a restored tree.
struct RestoredMember {
  pid_t pid = -1, ppid = -1;
  std::string comm;
  bool zombie = false;
  size_t threads = 0;
};

struct RestoreReport {
  pid_t pid = -1;
  size_t threads = 0;
  size_t images = 0;            // length of the chain
  uint64_t pages_stored = 0;    // pages written from the images
  uint64_t pages_zero = 0;
  uint64_t pages_copied = 0;    // of pages_stored, placed with UFFDIO_COPY (uffd_fill.hpp)
  uint64_t pages_kept = 0;      // image pages left to the private file mapping that held them (memory_fill.hpp)
  uint64_t bytes_written = 0;
  double fill_seconds = 0;      // memory fill alone
  double seconds = 0;           // the whole restore
  std::vector<std::string> warnings;  // what was restored differently (e.g. a limit that could not be raised)
  std::shared_ptr<LazyRestore> lazy;  // --lazy: the pager still filling memory (wait for it)
  std::vector<RestoredMember> processes;  // a tree's (tree_restore.hpp), the root first; empty for one process
};

// A directory that holds a tree's image restores the tree (tree_restore.hpp).
Result<RestoreReport> restore_process(const std::filesystem::path& dir, const RestoreOptions& options);
// The same from a chain already open (a page server's: lib/net/remote_chain.hpp).
Result<RestoreReport> restore_process(image::ImageChain& chain, const RestoreOptions& options);

}  // namespace wpckpt::restore
