// Syscall injection into a ptrace-stopped thread, with compel's lifecycle:
//   prepare (save registers and mask, map a scratch area, write the stub)
//   -> syscall() any number of times -> cure (unmap the scratch area, restore
//   the exact registers and signal mask, park the thread in the event stop it
//   was frozen in). RAII: the destructor cures if cure() was not called.
//
// Mechanics (docs/KERNEL.md §7): the first and the last call (mmap and
// munmap of the scratch area) run on a `syscall` instruction found in [vdso];
// all others run on the stub at the start of the scratch area. Calls are
// driven by PTRACE_SYSCALL stops, never by int3/single-step traps, and the
// stub's `syscall` is followed by a recovery path: if this process dies while
// the thread is in the middle of an injected call, the kernel detaches it and
// the thread itself restores its signal mask, every general register and
// flags, and jumps back to where it was frozen (an interrupted syscall is
// restarted the way the kernel would have). Only the two [vdso] calls are not
// covered. The thread's signals are blocked during the session.
//
// Scratch layout (32 KiB): [0, 4 KiB) code, then data() for the caller
// (arguments and results of injected calls), the recovery block in the last
// 256 bytes (stub_x86_64.hpp).
// The area is mapped RWX, MAP_PRIVATE|MAP_ANONYMOUS, and named
// "[anon:wpckpt-scratch]" when the kernel allows it, by the first call of
// the first batch (an injector that runs no batch leaves it unnamed).
//
// The threads of one process share one mapping of per-thread slots
// (InjectorOptions::scratch_slots, slot).
//
// Restore can use it on its own child: prepare() with `scratch_address` outside
// the future layout, set_syscall_site() after moving [vdso], forget_scratch()
// if it unmaps the area itself. Threads the target clones during an injected
// call are attached (TRACECLONE) and listed by new_threads().
// Use from the thread that traces `tid` (ptrace is per tracer thread).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/ptrace/regs.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::ptrace {

struct Stop;  // stop.hpp

struct InjectorOptions {
  uint64_t scratch_address = 0;  // 0: the kernel picks; else MAP_FIXED_NOREPLACE at it
  uint64_t syscall_site = 0;     // 0: search [vdso] for a `syscall` instruction
  // The other threads of a process share one mapping: this injector maps
  // `scratch_slots` areas of kScratchSize at once, uses the first and unmaps
  // them all at cure; an injector given `slot` (the start of another one,
  // slot_address()) maps and unmaps nothing and must be cured first. Each
  // thread has its own stub and recovery block; the mmap and munmap round
  // trips (~0.4 ms a thread here) are paid once per process.
  size_t scratch_slots = 1;
  uint64_t slot = 0;
  // The process's areas, read in this freeze: the [vdso] is found in them
  // instead of reading maps again (10 ms with 16,000 areas). Null: read.
  const std::vector<tracker::Vma>* areas = nullptr;
};

class Injector {
 public:
  // `tid` must be traced by the calling thread and in PTRACE_EVENT_STOP.
  static Result<std::unique_ptr<Injector>> prepare(pid_t tid, const InjectorOptions& options = {});
  ~Injector();
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;

  // Runs one syscall in the target. The value is what the kernel returned
  // (>= 0, or -errno for a failed call); an Error means the injection itself
  // failed (e.g. the thread died).
  Result<long> syscall(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0, uint64_t a4 = 0,
                       uint64_t a5 = 0, uint64_t a6 = 0);
  // The same for a call that must succeed: a kernel error becomes an Error
  // with that errno, `what` and `context`.
  Result<long> checked_syscall(const char* what, const std::string& context, long nr, uint64_t a1 = 0,
                               uint64_t a2 = 0, uint64_t a3 = 0, uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);

  // The caller's part of the scratch area (target addresses).
  uint64_t data() const { return scratch_ + kCodeSize; }
  static constexpr size_t data_size() { return kScratchSize - kCodeSize - kBlockSize; }
  uint64_t scratch() const { return scratch_; }
  // Slot i of the area this injector mapped (InjectorOptions::scratch_slots).
  uint64_t slot_address(size_t i) const { return scratch_ + i * kScratchSize; }

  // One call of a batch: pointers in `args` are target addresses.
  struct Call {
    long nr = 0;
    std::array<uint64_t, 6> args{};
  };
  // Runs `calls` in order in one resumption of the thread: one round trip
  // for all of them instead of four ptrace stops each (a signal table of 64
  // queries took ~3 ms one by one on a VM). Returns each call's value (>= 0
  // or -errno). The table lives at the top of data(): buffers the calls
  // write into must lie in [data(), batch_table()). The thread runs the
  // calls unsupervised, then sleeps until the tracer interrupts it; if
  // the tracer is gone for kBatchWaitSeconds it recovers by itself (as after
  // a single call) and batch() of a tracer that was merely that slow fails
  // with ETIMEDOUT, the thread having gone back to its own code.
  Result<std::vector<long>> batch(std::span<const Call> calls);
  // batch() in parts, so that the threads of a process run their batches
  // at the same time: each round trip is mostly the wake-up of the thread
  // and of the tracer (100-250 us each on this guest), which overlap.
  // begin_batch resumes the thread; interrupt_batch waits until its calls
  // are done and asks it to stop; end_batch (interrupting first if not
  // done yet) waits for the stop and returns the values. No other call on
  // this injector in between.
  Result<void> begin_batch(std::span<const Call> calls);
  Result<void> interrupt_batch();
  Result<std::vector<long>> end_batch();
  uint64_t batch_table() const { return data() + data_size() - kBatchArea; }
  static constexpr size_t kBatchArea = 8192;
  static constexpr size_t kBatchMaxCalls = (kBatchArea - 32) / 64;
  static constexpr int kBatchWaitSeconds = 3;

  // Target memory through /proc/TID/mem (any address, any protection).
  Result<void> write(uint64_t addr, const void* data, size_t len);
  Result<void> read(uint64_t addr, void* out, size_t len);
  int mem_fd() const { return mem_.get(); }

  // Where the first and last calls run: a `syscall` (0f 05) instruction in
  // the target. Call it after moving or replacing [vdso].
  void set_syscall_site(uint64_t addr) { site_ = addr; }
  uint64_t syscall_site() const { return site_; }
  // The [vdso] read while searching it for the site (empty when the site
  // was given): a dump records it without reading maps and memory again.
  const std::vector<uint8_t>& vdso_image() const { return vdso_; }
  // The caller unmapped the scratch area itself: cure() will not.
  void forget_scratch() { scratch_ = 0; }

  pid_t tid() const { return tid_; }
  const Registers& saved_regs() const { return saved_; }
  uint64_t saved_sigmask() const { return saved_mask_; }
  const std::vector<pid_t>& new_threads() const { return new_threads_; }

  // Unmaps the scratch area, restores registers and mask, and brings the
  // thread back into PTRACE_EVENT_STOP. Idempotent. On error the thread may
  // still be stopped with restored registers; the Freezer detaches it.
  Result<void> cure();

  static constexpr size_t kScratchSize = 0x8000;
  static constexpr size_t kCodeSize = 4096;
  static constexpr size_t kBlockSize = 256;

 private:
  Injector() = default;
  Result<Registers> run(Registers regs);
  Result<long> call_at(uint64_t site, long nr, const uint64_t (&args)[6]);
  Result<void> write_stub();
  // Records what a stop that is not ours means (a clone, a signal to send
  // again at cure); an error if the thread exited.
  Result<void> note_stop(const Stop& stop);
  Result<void> wait_batch_done(uint64_t flag);  // then PTRACE_INTERRUPT
  Result<void> wait_interrupted();

  pid_t tid_ = -1;
  UniqueFd mem_;
  Registers saved_{};
  uint64_t saved_mask_ = 0;
  uint64_t site_ = 0;
  std::vector<uint8_t> vdso_;
  uint64_t scratch_ = 0;
  size_t scratch_bytes_ = 0;  // what cure() unmaps: 0 for a slot of another injector's area
  bool cured_ = false;
  bool name_pending_ = false;       // the scratch area's name: given by the next batch
  bool batch_named_ = false;        // the running batch's first call names the area
  size_t batch_calls_ = 0;          // of the batch begun and not ended yet
  bool batch_interrupted_ = false;  // its calls done, PTRACE_INTERRUPT sent
  std::vector<pid_t> new_threads_;
  std::vector<int> suppressed_signals_;
};

// A `syscall` instruction inside the [vdso] of `pid`, or an error; the
// [vdso]'s bytes in `image`. `areas`: the process's, if read already.
Result<uint64_t> find_vdso_syscall(pid_t pid, int mem_fd, std::vector<uint8_t>& image,
                                   const std::vector<tracker::Vma>* areas = nullptr);

}  // namespace wpckpt::ptrace
