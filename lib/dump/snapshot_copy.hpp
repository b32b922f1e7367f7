// The instant a snapshot keeps: a copy of the frozen process made by a
// clone() injected into it (no CLONE_VM: the kernel copies the address space
// copy-on-write, page tables only), stopped before it runs a single
// instruction and read by wpckpt while the process itself runs on. A page
// the process writes afterwards is copied by the kernel's copy-on-write
// fault, never held for wpckpt: no write waits on a userspace round trip.
//
// Why not a synchronous userfaultfd write-protect (copy-before-write):
// measured side by side (bench/snapshot_mechanisms_bench, docs/KERNEL.md
// §17.1), its freeze — write-protecting all the memory — costs as much as
// the fork's page-table copy or more (78 vs 36 ms at 1 GiB, 311 vs 254 ms at
// 16 GiB), every first write to an uncopied page waits a user-space round
// trip (p50 11-15 us vs 4-7 us for a copy-on-write fault), and it cannot
// share a range with the agent's asynchronous registration. The fork costs
// memory for the pages written during the copy. A small delta is not forked
// at all: its pages are read while frozen (memory_capture.cpp read_all_frozen).
//
// The copy's exit signal is 0 (the process gets no SIGCHLD), and wpckpt
// reaps it: killed and waited for as its tracer, then, as its parent is the
// process, waited for by a waitid() injected into it during a second brief
// freeze. Its pid is visible in the process's children meanwhile. Memory:
// every page the process writes before the copy is read exists twice; the
// copy is the kernel's first choice when memory runs out.
#pragma once

#include <sys/types.h>

#include <utility>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/ptrace/freezer.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {

class ForkedCopy {
 public:
  // The process is frozen in `frozen`; its main thread makes the copy.
  static Result<ForkedCopy> make(const ptrace::Freezer& frozen);
  ForkedCopy(ForkedCopy&& o) noexcept;
  ForkedCopy& operator=(ForkedCopy&&) = delete;
  ~ForkedCopy();  // releases, best effort
  pid_t pid() const { return copy_; }
  // The copy ended before it was released (the OOM killer prefers it: its
  // oom_score_adj is 1000, so that it dies rather than the process).
  bool died() const;

  // Kills and reaps the copy (a second freeze of the process, of about a
  // millisecond, for the waitid). Returns how long the process was stopped.
  Result<double> release();

 private:
  ForkedCopy(pid_t process, pid_t copy) : process_(process), copy_(copy) {}
  pid_t process_ = 0, copy_ = 0;
};

// The areas a fork does not copy faithfully (MADV_DONTFORK, MADV_WIPEONFORK):
// a snapshot reads them from the frozen process itself. The flags of areas
// unchanged since `before` (smaps read while the process ran) are reused.
Result<std::vector<std::pair<uint64_t, uint64_t>>> not_copied_by_fork(pid_t pid, const std::vector<tracker::Vma>* before);

}  // namespace wpckpt::dump
