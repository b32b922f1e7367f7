#include "lib/ptrace/injector.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "lib/base/log.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/ptrace/stop.hpp"
#include "lib/ptrace/stub_x86_64.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::ptrace {
namespace {

static_assert(Injector::kScratchSize == stub::kAreaSize);
static_assert(Injector::kScratchSize - Injector::kBlockSize == stub::kBlockOffset);

constexpr char kScratchName[] = "wpckpt-scratch";
// Where the name lies: in the code page, after the stub (prepare checks).
constexpr uint64_t kNameOffset = Injector::kCodeSize - 64;
static_assert(sizeof kScratchName <= 64);

// Whether this kernel names anonymous areas (CONFIG_ANON_VMA_NAME): asked
// once, on a page of our own.
bool kernel_names_areas() {
  static const bool names = [] {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return true;  // unknown: try it on the target
    bool ok = ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, p, 4096, kScratchName) == 0;
    ::munmap(p, 4096);
    return ok;
  }();
  return names;
}

// Kernel-internal restart codes a thread frozen in a syscall shows in rax.
constexpr long kErestartsys = 512, kErestartnointr = 513, kErestartnohand = 514, kErestartRestartblock = 516;

std::string thread_context(pid_t tid) { return fmt::format("thread {}", tid); }

// What the kernel would do on return to user mode without a signal handler:
// an interrupted syscall is restarted. Used for registers the thread may run
// with unsupervised (the recovery path, parking between vdso calls).
Registers with_restart_applied(Registers regs) {
  if (static_cast<long>(regs.orig_rax) < 0) return regs;
  long rax = static_cast<long>(regs.rax);
  if (rax == -kErestartsys || rax == -kErestartnointr || rax == -kErestartnohand) {
    regs.rax = regs.orig_rax;
    regs.rip -= 2;
  } else if (rax == -kErestartRestartblock) {
    regs.rax = SYS_restart_syscall;
    regs.rip -= 2;
  }
  regs.orig_rax = static_cast<uint64_t>(-1);
  return regs;
}

Result<void> resume(long request, pid_t tid, int sig, const char* name) {
  if (::ptrace(static_cast<__ptrace_request>(request), tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) !=
      0)
    return errno_error(name, thread_context(tid));
  return ok();
}

}  // namespace

Result<uint64_t> find_vdso_syscall(pid_t pid, int mem_fd, std::vector<uint8_t>& bytes,
                                   const std::vector<tracker::Vma>* areas) {
  std::vector<tracker::Vma> read_here;
  WPCKPT_TRY_ASSIGN(const std::vector<tracker::Vma>* vmas, tracker::given_or_read_maps(pid, areas, read_here));
  for (const auto& vma : *vmas) {
    if (vma.name != "[vdso]") continue;
    bytes.resize(vma.size());
    WPCKPT_TRY(read_memory(mem_fd, vma.start, bytes.data(), bytes.size()));
    for (size_t i = 0; i + 1 < bytes.size(); ++i)
      if (bytes[i] == 0x0f && bytes[i + 1] == 0x05) return vma.start + i;
    return make_error(ENOENT, "find a syscall instruction", fmt::format("in [vdso] of process {}", pid));
  }
  return make_error(ENOENT, "find [vdso]", fmt::format("process {}", pid))
      .with_hint("the process has no [vdso] (vdso=0?); pass a syscall site explicitly");
}

Result<std::unique_ptr<Injector>> Injector::prepare(pid_t tid, const InjectorOptions& options) {
  std::unique_ptr<Injector> inj(new Injector());
  inj->tid_ = tid;
  std::string mem_path = fmt::format("/proc/{}/mem", tid);
  inj->mem_.reset(::open(mem_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!inj->mem_) return errno_error("open", mem_path);
  WPCKPT_TRY_ASSIGN(inj->saved_, get_regs(tid));
  WPCKPT_TRY_ASSIGN(inj->saved_mask_, get_sigmask(tid));
  inj->site_ = options.syscall_site;
  if (inj->site_ == 0) {
    WPCKPT_TRY_ASSIGN(inj->site_, find_vdso_syscall(tid, inj->mem_.get(), inj->vdso_, options.areas));
  }
  // From here on the destructor cures: registers and mask come back.
  WPCKPT_TRY(set_sigmask(tid, ~uint64_t{0}));
  if (options.slot != 0) {
    inj->scratch_ = options.slot;  // mapped by another injector, unmapped by it
    WPCKPT_TRY(inj->write_stub());
    return inj;
  }
  const size_t bytes = kScratchSize * std::max<size_t>(1, options.scratch_slots);
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | (options.scratch_address ? MAP_FIXED_NOREPLACE : 0);
  WPCKPT_TRY_ASSIGN(long addr, inj->call_at(inj->site_, SYS_mmap,
                                            {options.scratch_address, bytes,
                                             PROT_READ | PROT_WRITE | PROT_EXEC, static_cast<uint64_t>(flags),
                                             static_cast<uint64_t>(-1), 0}));
  if (uapi::is_syscall_error(addr))
    return make_error(static_cast<int>(-addr), "injected mmap of the scratch area", thread_context(tid));
  inj->scratch_ = static_cast<uint64_t>(addr);
  inj->scratch_bytes_ = bytes;
  if (options.scratch_address && inj->scratch_ != options.scratch_address)
    return make_error(EEXIST, "injected mmap of the scratch area", fmt::format("at {:#x}", options.scratch_address));
  WPCKPT_TRY(inj->write_stub());
  // Best effort: a name makes a leftover area recognisable in /proc/PID/maps.
  // Not tried where the kernel has no area names. Given by the first batch,
  // as its first call: a call of its own was two more stops of the thread
  // (~0.1-0.3 ms of every dump's freeze here).
  if (kernel_names_areas() && stub::code().size() <= kNameOffset) {
    WPCKPT_TRY(inj->write(inj->scratch_ + kNameOffset, kScratchName, sizeof kScratchName));
    inj->name_pending_ = true;
  }
  return inj;
}

Result<void> Injector::write_stub() {
  auto code = stub::code();
  WPCKPT_TRY(write(scratch_, code.data(), code.size()));
  Registers r = with_restart_applied(saved_);
  std::array<uint64_t, stub::kBlockWords> block{r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11,
                                                r.r10, r.r9,  r.r8,  r.rax, r.rcx, r.rdx, r.rsi,
                                                r.rdi, r.eflags, r.rsp, r.rip, saved_mask_};
  return write(scratch_ + stub::kBlockOffset, block.data(), sizeof block);
}

Injector::~Injector() {
  auto r = cure();
  if (!r) log::warn("restoring thread {} after syscall injection: {}", tid_, r.error().message());
}

Result<void> Injector::note_stop(const Stop& stop) {
  switch (stop.kind) {
    case StopKind::Exited:
      return make_error(ESRCH, "injected syscall", thread_context(tid_)).with_hint("the thread exited meanwhile");
    case StopKind::NewThread:
      if ((stop.status >> 16) == PTRACE_EVENT_CLONE && stop.new_tid > 0) new_threads_.push_back(stop.new_tid);
      break;
    case StopKind::SignalStop:
      // Only unblockable or synchronous signals get here (the mask is
      // full): keep it from interfering now, send it again at cure.
      suppressed_signals_.push_back(stop.signal);
      break;
    case StopKind::EventStop:  // a group stop or a stray interrupt: go on
    case StopKind::SyscallStop:
      break;
  }
  return ok();
}

Result<Registers> Injector::run(Registers regs) {
  WPCKPT_TRY(set_regs(tid_, regs));
  WPCKPT_TRY(resume(PTRACE_SYSCALL, tid_, 0, "PTRACE_SYSCALL"));
  for (int syscall_stops = 0;;) {
    WPCKPT_TRY_ASSIGN(Stop stop, wait_stop(tid_));
    if (stop.kind == StopKind::SyscallStop && ++syscall_stops == 2) return get_regs(tid_);  // entry, then exit
    WPCKPT_TRY(note_stop(stop));
    WPCKPT_TRY(resume(PTRACE_SYSCALL, tid_, 0, "PTRACE_SYSCALL"));
  }
}

Result<long> Injector::call_at(uint64_t site, long nr, const uint64_t (&args)[6]) {
  Registers r = saved_;
  r.rip = site;
  r.rax = static_cast<uint64_t>(nr);
  r.orig_rax = static_cast<uint64_t>(-1);  // not a restartable syscall frame
  r.rdi = args[0], r.rsi = args[1], r.rdx = args[2], r.r10 = args[3], r.r8 = args[4], r.r9 = args[5];
  WPCKPT_TRY_ASSIGN(Registers after, run(r));
  bool from_stub = scratch_ != 0 && site == scratch_ + stub::kSyscallOffset;
  // Outside the stub nothing follows the syscall that could recover the
  // thread: park it on its own (restart-applied) registers at once.
  if (!from_stub) WPCKPT_TRY(set_regs(tid_, with_restart_applied(saved_)));
  return static_cast<long>(after.rax);
}

Result<long> Injector::syscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                               uint64_t a6) {
  if (cured_) return make_error(EINVAL, "injected syscall", thread_context(tid_)).with_hint("the injector is cured");
  uint64_t site = scratch_ ? scratch_ + stub::kSyscallOffset : site_;
  return call_at(site, nr, {a1, a2, a3, a4, a5, a6});
}

Result<long> Injector::checked_syscall(const char* what, const std::string& context, long nr, uint64_t a1,
                                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6) {
  WPCKPT_TRY_ASSIGN(long r, syscall(nr, a1, a2, a3, a4, a5, a6));
  if (uapi::is_syscall_error(r)) return make_error(static_cast<int>(-r), what, context);
  return r;
}

Result<std::vector<long>> Injector::batch(std::span<const Call> calls) {
  WPCKPT_TRY(begin_batch(calls));
  return end_batch();
}

Result<void> Injector::begin_batch(std::span<const Call> calls) {
  if (cured_ || scratch_ == 0)
    return make_error(EINVAL, "injected batch", thread_context(tid_)).with_hint("the injector is cured");
  if (batch_calls_ != 0) return make_error(EBUSY, "injected batch", thread_context(tid_) + ": one is running");
  if (calls.size() > kBatchMaxCalls)
    return make_error(E2BIG, "injected batch", fmt::format("{} calls (at most {})", calls.size(), kBatchMaxCalls));
  // The scratch area's name first, if it is still to be given and fits.
  const bool name = name_pending_ && calls.size() < kBatchMaxCalls;
  const size_t total = calls.size() + (name ? 1 : 0);
  // Layout at batch_table(): the done flag, the wait's timespec, the entries.
  const uint64_t flag = batch_table(), timeout = flag + 16, table = flag + 32;
  static_assert(stub::kBatchEntryWords == 8);
  std::vector<uint64_t> words(4 + total * stub::kBatchEntryWords, 0);
  words[2] = kBatchWaitSeconds;
  auto entry = [&](size_t i, long nr, const std::array<uint64_t, 6>& args) {
    uint64_t* e = &words[4 + i * stub::kBatchEntryWords];
    e[0] = static_cast<uint64_t>(nr);
    std::copy(args.begin(), args.end(), e + 1);
  };
  if (name) entry(0, SYS_prctl, {PR_SET_VMA, PR_SET_VMA_ANON_NAME, scratch_, scratch_bytes_, scratch_ + kNameOffset, 0});
  for (size_t i = 0; i < calls.size(); ++i) entry(i + (name ? 1 : 0), calls[i].nr, calls[i].args);
  WPCKPT_TRY(write(flag, words.data(), words.size() * sizeof(uint64_t)));
  Registers r = saved_;
  r.rip = scratch_ + stub::batch_offset();
  r.orig_rax = static_cast<uint64_t>(-1);
  r.r12 = table, r.r13 = total, r.r14 = flag, r.r15 = timeout;
  WPCKPT_TRY(set_regs(tid_, r));
  WPCKPT_TRY(resume(PTRACE_CONT, tid_, 0, "PTRACE_CONT"));
  batch_calls_ = total;
  batch_named_ = name;
  if (name) name_pending_ = false;
  return ok();
}

Result<void> Injector::interrupt_batch() {
  if (batch_calls_ == 0) return make_error(EINVAL, "injected batch", thread_context(tid_) + ": none was begun");
  if (batch_interrupted_) return ok();
  WPCKPT_TRY(wait_batch_done(batch_table()));
  batch_interrupted_ = true;
  return ok();
}

Result<std::vector<long>> Injector::end_batch() {
  WPCKPT_TRY(interrupt_batch());
  const size_t n = std::exchange(batch_calls_, 0);
  batch_interrupted_ = false;
  const uint64_t table = batch_table() + 32;
  WPCKPT_TRY(wait_interrupted());
  std::vector<uint64_t> words(n * stub::kBatchEntryWords);
  WPCKPT_TRY(read(table, words.data(), words.size() * sizeof(uint64_t)));
  std::vector<long> results(n);
  for (size_t i = 0; i < n; ++i) results[i] = static_cast<long>(words[i * stub::kBatchEntryWords + 7]);
  if (std::exchange(batch_named_, false)) {
    if (results[0] != 0) log::trace("naming the scratch area failed: {}", std::strerror(static_cast<int>(-results[0])));
    results.erase(results.begin());
  }
  return results;
}

Result<void> Injector::wait_batch_done(uint64_t flag) {
  // The calls take microseconds: poll the flag, yielding the CPU, and take
  // any stop the thread reports meanwhile.
  for (;;) {
    uint64_t done = 0;
    WPCKPT_TRY(read(flag, &done, sizeof done));
    if (done == 1) break;
    if (done == 2)
      return make_error(ETIMEDOUT, "injected batch", thread_context(tid_))
          .with_hint(fmt::format("the thread waited {} s for wpckpt and went back to its own code (was wpckpt "
                                 "stopped or starved?); nothing was captured from it. Run the command again",
                                 kBatchWaitSeconds));
    WPCKPT_TRY_ASSIGN(std::optional<Stop> stop, poll_stop(tid_));
    if (stop) {
      WPCKPT_TRY(note_stop(*stop));
      WPCKPT_TRY(resume(PTRACE_CONT, tid_, 0, "PTRACE_CONT"));
    }
    ::sched_yield();
  }
  // Out of its sleep and into an event stop (wait_interrupted).
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceInterrupt), tid_, nullptr, nullptr) != 0)
    return errno_error("PTRACE_INTERRUPT", thread_context(tid_));
  return ok();
}

Result<void> Injector::wait_interrupted() {
  // Other stops pass on the way.
  for (;;) {
    WPCKPT_TRY_ASSIGN(Stop stop, wait_stop(tid_));
    if (stop.kind == StopKind::EventStop) return ok();
    WPCKPT_TRY(note_stop(stop));
    WPCKPT_TRY(resume(PTRACE_CONT, tid_, 0, "PTRACE_CONT"));
  }
}

Result<void> Injector::write(uint64_t addr, const void* data, size_t len) {
  return write_memory(mem_.get(), addr, data, len);
}

Result<void> Injector::read(uint64_t addr, void* out, size_t len) { return read_memory(mem_.get(), addr, out, len); }

Result<void> Injector::cure() {
  if (cured_ || tid_ < 0) return ok();
  Result<void> result;
  // A batch still running (its caller failed elsewhere) ends first: the
  // thread is back in a stop before its registers are.
  if (batch_calls_ != 0) {
    if (auto ended = end_batch(); !ended) result = std::move(ended).error();
  }
  cured_ = true;
  if (scratch_ != 0 && scratch_bytes_ == 0) scratch_ = 0;  // a slot: its owner unmaps
  if (scratch_ != 0) {
    auto unmapped = call_at(site_, SYS_munmap, {scratch_, scratch_bytes_, 0, 0, 0, 0});
    if (!unmapped) {
      result = std::move(unmapped).error();
    } else if (*unmapped != 0) {
      result = make_error(static_cast<int>(-*unmapped), "injected munmap of the scratch area",
                          fmt::format("{:#x} in thread {}", scratch_, tid_));
    } else {
      scratch_ = 0;
    }
  }
  WPCKPT_TRY(set_regs(tid_, saved_));
  WPCKPT_TRY(set_sigmask(tid_, saved_mask_));
  // Back into the event stop the freezer left the thread in: on the way the
  // kernel sees the exact saved registers, so an interrupted syscall is
  // restarted (or not) by the kernel itself when the thread is detached.
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceInterrupt), tid_, nullptr, nullptr) != 0)
    return errno_error("PTRACE_INTERRUPT", thread_context(tid_));
  WPCKPT_TRY(resume(PTRACE_CONT, tid_, 0, "PTRACE_CONT"));
  WPCKPT_TRY_ASSIGN(bool alive, wait_event_stop(tid_, &new_threads_));
  if (!alive) return make_error(ESRCH, "cure after syscall injection", thread_context(tid_));
  for (int sig : suppressed_signals_) ::syscall(SYS_tkill, tid_, sig);
  suppressed_signals_.clear();
  return result;
}

}  // namespace wpckpt::ptrace
