// `wpckpt restore --lazy`: the process runs before its anonymous memory is
// in; a pager process serves its userfaultfd MISSING faults from the image
// chain and copies the rest in behind them (pager.hpp).
//
// Which memory is lazy: every private mapping that restore creates as
// anonymous memory (anon, heap, stack, private shmem) — the kernel's MISSING
// mode covers only anonymous, shmem and hugetlb areas. Private file mappings
// (their copied-on-write pages) and shared memory are filled eagerly first,
// as an eager restore fills them, reading only their own frames.
//
// Never a silent zero page (docs/KERNEL.md §9: when the last copy of a uffd
// closes, every page not yet served reads as zero):
//  - the uffd is created inside the restored process (a uffd acts on its
//    creator's memory, §2) and the process keeps that descriptor, at a high
//    number, until all memory is in: the pager dying does not release the
//    registration, so a fault on a missing page waits instead of reading zero;
//  - the pager is a child of wpckpt restore with PR_SET_PDEATHSIG(SIGKILL);
//    wpckpt restore watches it: a pager that fails (unreadable image, a
//    corrupt frame) or dies (killed) before every page is in makes restore
//    SIGKILL the restored process, say why, and exit with status 1;
//  - a child the process forks meanwhile gets its own uffd from the kernel
//    (EVENT_FORK), installed in the pager only: the pager sends a copy to
//    wpckpt restore (SCM_RIGHTS), which holds it, and kills the process's
//    descendants with it;
//  - the restored process keeps the parent-death signal SIGKILL that every
//    new process gets (child_plan.cpp) until all memory is in (re-armed after
//    its credentials are switched, which clears it): if wpckpt restore itself
//    is killed, the process dies with it rather than waiting forever.
// When everything is in, the pager unregisters the ranges and exits; restore
// then closes the process's copy of the uffd and clears its death signal by
// injected syscalls, so the process is as an eager restore leaves it (and can
// be pre-dumped again: the agent's uffd then registers the same areas).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "dump-format/image.hpp"
#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/restore/memory_fill.hpp"
#include "lib/restore/pager.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

struct LazyOutcome {
  bool complete = false;     // every page is in
  bool process_ended = false;  // the process exited before that (the pager was stopped)
  PagerStats pager;
  uint64_t pages_lazy = 0;   // pages registered for faults
  std::optional<int> reaped_status;  // it exited while restore released it: reaped, its wait status
};

class LazyRestore {
 public:
  // In the seized process, after build_mappings: fills what cannot be lazy,
  // creates and registers the uffd, starts the pager (which serves faults at
  // once; the background pass waits for let_run()).
  // `complete` runs in the pager once every page is in (RestoreOptions::pages_complete).
  static Result<std::unique_ptr<LazyRestore>> start(ptrace::Injector& inj, const image::ImageChain& chain,
                                                    const state::ProcessState& st, FillStats& fill,
                                                    const std::function<void()>& complete = {});
  ~LazyRestore();  // a pager still running is killed: the restore failed
  LazyRestore(const LazyRestore&) = delete;
  LazyRestore& operator=(const LazyRestore&) = delete;

  // Injected into the main thread after its credentials are set.
  Result<void> arm_death_signal(ptrace::Injector& inj) const;
  // The process runs: the background pass may start.
  void let_run();
  pid_t pager_pid() const { return pager_; }

  // Waits for the end of the lazy phase. Complete: the process's uffd is
  // closed and its death signal cleared. The process ended first: the pager
  // is stopped. The pager failed or died: the process is SIGKILLed (the
  // caller still reaps it) and the error says why.
  Result<LazyOutcome> wait(pid_t pid);

 private:
  LazyRestore() = default;
  Result<void> fork_pager(const image::ImageChain& chain, int uffd, std::vector<LazyRegion> regions,
                          std::vector<uint64_t> hot, const std::function<void()>& complete);
  void start_watchdog(pid_t pid);
  void stop_watchdog();
  Result<std::optional<int>> release_process(pid_t pid) const;
  void take_child_uffds();
  std::string pager_end();

  pid_t pager_ = -1;
  UniqueFd report_;    // the pager's report (read end)
  UniqueFd start_;     // closing it starts the background pass (write end)
  UniqueFd forks_;     // the pager sends each fork child's uffd here
  std::vector<UniqueFd> child_uffds_;  // held so that a dead pager does not release them
  int uffd_in_process_ = -1;
  uint64_t pages_lazy_ = 0;
  // Until let_run(): the restore itself may wait on a missing page (an
  // injected call that writes the process's memory), so a pager that dies
  // then makes this thread kill the process; wait() watches it afterwards.
  std::thread watchdog_;
  UniqueFd watchdog_stop_;
  std::atomic<bool> pager_died_early_{false};
};

}  // namespace wpckpt::restore
