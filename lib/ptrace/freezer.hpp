// Freezing a process for a consistent snapshot: every thread seized and held
// in PTRACE_EVENT_STOP (docs/KERNEL.md §7). RAII: the destructor
// detaches every thread that is still ours, so the target runs on unchanged
// whatever happened (error, exception-free early return, SIGINT handled by
// the caller). If this process dies instead, the kernel detaches the threads
// and they run on (no PTRACE_O_EXITKILL).
//
// ptrace is per tracer *thread*: create, use and destroy a Freezer (and every
// Injector on its threads) from one thread of this process.
//
// Typical use (dump):
//   WPCKPT_TRY_ASSIGN(auto frozen, ptrace::Freezer::freeze(pid));
//   for (pid_t tid : frozen.tids()) ... get_regs(tid) ...
//   frozen.kill();      // after the image is committed (or let it detach)
// Restore: a child it created and stopped itself (PTRACE_TRACEME or SEIZE)
// is handed over with Freezer::adopt(pid, {tid...}).
#pragma once

#include <sys/types.h>

#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::ptrace {

class Freezer {
 public:
  // Seizes and interrupts every thread of `pid`, re-reading /proc/PID/task
  // until a pass finds nothing new. Threads that exit meanwhile are dropped;
  // fails with ESRCH if the whole process exited, EPERM if another tracer
  // holds a thread. On failure every thread seized so far is detached.
  static Result<Freezer> freeze(pid_t pid);
  // Takes over threads this thread already traces and that are stopped.
  static Freezer adopt(pid_t pid, std::vector<pid_t> tids);

  Freezer(Freezer&& o) noexcept;
  Freezer& operator=(Freezer&& o) noexcept;
  Freezer(const Freezer&) = delete;
  Freezer& operator=(const Freezer&) = delete;
  ~Freezer();

  pid_t pid() const { return pid_; }
  // Frozen threads, the thread-group leader (main thread) first if alive.
  const std::vector<pid_t>& tids() const { return tids_; }
  // Seconds spent in freeze().
  double freezing_seconds() const { return freezing_seconds_; }

  // Lets every thread run on (PTRACE_DETACH). Idempotent; errors of single
  // threads (e.g. they were killed meanwhile) are not fatal.
  void detach();
  // SIGKILLs the process and reaps the tracee notifications of its threads.
  void kill();

 private:
  Freezer(pid_t pid, std::vector<pid_t> tids) : pid_(pid), tids_(std::move(tids)) {}
  pid_t pid_ = -1;
  std::vector<pid_t> tids_;
  double freezing_seconds_ = 0;
};

}  // namespace wpckpt::ptrace
