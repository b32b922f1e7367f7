#include "lib/dump/state_capture.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "lib/base/log.hpp"
#include "lib/dump/fault_point.hpp"
#include "lib/dump/mapping_capture.hpp"
#include "lib/dump/process_capture.hpp"
#include "lib/dump/sysv_shm_capture.hpp"
#include "lib/dump/thread_capture.hpp"

namespace wpckpt::dump {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t micros(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

}  // namespace

Result<state::ProcessState> capture_state(pid_t pid, const fds::CaptureOptions& options,
                                          const std::atomic<bool>* cancel, const ptrace::Freezer& frozen,
                                          const std::vector<tracker::Vma>* smaps_before_freeze, FdCapture& fds,
                                          const std::vector<tracker::Vma>* frozen_areas) {
  auto check_cancel = [&]() -> Result<void> {
    if (cancel && cancel->load()) return interrupted_error(pid);
    return ok();
  };
  state::ProcessState st;
  auto t0 = Clock::now();
  WPCKPT_TRY_ASSIGN(fds, capture_fds(pid, options));
  auto t_fds = Clock::now();
  st.fds = std::move(fds.fds);
  st.tracking = std::move(fds.tracking);
  // One injector per thread; the main thread's serves the process-wide
  // queries too, and maps one scratch slot per thread: the others use
  // theirs without an mmap and a munmap each (ptrace::InjectorOptions).
  // The threads of a window run their injected calls at once: one after the
  // other, a redis-server's 5 threads took 0.1-0.26 ms each, mostly waking
  // the thread and the tracer. A window bounds the descriptors held (each
  // injector has the thread's /proc/TID/mem open).
  constexpr size_t kThreadWindow = 16;
  std::unique_ptr<ptrace::Injector> main_injector;
  ptrace::InjectorOptions injection;  // the [vdso] searched for a syscall instruction once
  const std::vector<pid_t>& tids = frozen.tids();
  injection.scratch_slots = tids.size();
  injection.areas = frozen_areas;
  for (size_t first = 0; first < tids.size(); first += kThreadWindow) {
    // Cured before main_injector (declared outside) on every path, as slots must be.
    std::vector<std::unique_ptr<ptrace::Injector>> injectors;  // null: main_injector
    std::vector<state::ThreadState> threads;
    for (size_t i = first; i < std::min(tids.size(), first + kThreadWindow); ++i) {
      WPCKPT_TRY(check_cancel());
      if (main_injector) injection.slot = main_injector->slot_address(i);
      WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(tids[i], injection));
      injection.syscall_site = inj->syscall_site();
      WPCKPT_TRY_ASSIGN(auto t, begin_thread_capture(pid, tids[i], *inj));
      threads.push_back(std::move(t));
      if (!main_injector) main_injector = std::move(inj);  // cured last: it unmaps every slot
      injectors.push_back(std::move(inj));
    }
    auto injector = [&](size_t k) -> ptrace::Injector& { return injectors[k] ? *injectors[k] : *main_injector; };
    // Every thread asked to stop before the first stop is waited for.
    for (size_t k = 0; k < threads.size(); ++k) WPCKPT_TRY(injector(k).interrupt_batch());
    for (size_t k = 0; k < threads.size(); ++k) {
      WPCKPT_TRY(finish_thread_capture(injector(k), threads[k]));
      st.threads.push_back(std::move(threads[k]));
    }
    for (auto& inj : injectors)
      if (inj) WPCKPT_TRY(inj->cure());
  }
  WPCKPT_TRY(check_cancel());
  auto t_threads = Clock::now();
  WPCKPT_TRY(capture_process(pid, *main_injector, st, cancel));
  WPCKPT_TRY(main_injector->cure());
  auto t_process = Clock::now();
  // After every injector is cured (or from areas read before the first):
  // no scratch area left to skip.
  WPCKPT_TRY_ASSIGN(st.mappings, capture_mappings(pid, {.smaps_before_freeze = smaps_before_freeze, .areas = frozen_areas}));
  WPCKPT_TRY_ASSIGN(st.sysv_shm, capture_sysv_shm(st.mappings));
  log::debug("state capture of {} (us): fds {}, {} threads {}, process {}, mappings {}", pid, micros(t_fds - t0),
             st.threads.size(), micros(t_threads - t_fds), micros(t_process - t_threads),
             micros(Clock::now() - t_process));
  return st;
}

}  // namespace wpckpt::dump
