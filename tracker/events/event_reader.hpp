// The event queue of one tracked process: BPF programs record its write
// faults and address-space changes into a ring buffer (tracker/bpf/), and a
// thread of ours drains it every few milliseconds into the current window.
// The target never waits for us: when we fall behind, the kernel drops
// records and counts them, and the window says it is incomplete.
//
// What the events cannot see (docs: man/wpckpt-iterate.1, docs/KERNEL.md §12),
// so a window names every written page only if none of them happened:
//  - writes through get_user_pages by another process (process_vm_writev,
//    /proc/PID/mem, ptrace pokes): they take the target's mmap lock, which
//    the programs watch; any other process locking it marks the window
//    incomplete (a `ps` reading its command line does too: harmless, a
//    full scan follows);
//  - writes into pinned pages (O_DIRECT reads, io_uring, AIO, vmsplice, the
//    program's own userfaultfd): once the process can do them (seen in its
//    system calls or its open descriptors), every later window is incomplete;
//  - exec: a new address space; the reader ends.
// PAGEMAP_SCAN stays the truth: an incomplete window means a full scan.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "lib/base/result.hpp"
#include "tracker/events/event_window.hpp"

namespace wpckpt::tracker {

class EventReader {
 public:
  // Loads and attaches the BPF programs for `pid` and starts the thread
  // that drains them. From the moment this returns, every write fault of
  // the process is in some window.
  static Result<std::unique_ptr<EventReader>> start(pid_t pid);
  virtual ~EventReader() = default;

  virtual pid_t pid() const = 0;
  // Everything recorded since the previous call (or since start), after
  // draining what the kernel holds now.
  virtual EventWindow take_window() = 0;
  // Records dropped since start.
  virtual uint64_t lost_total() const = 0;
};

// Whether this wpckpt was built with the BPF programs ("" or why not).
bool event_queue_built();
std::string event_queue_missing();

}  // namespace wpckpt::tracker
