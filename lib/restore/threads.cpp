#include "lib/restore/threads.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstring>

#include "lib/base/uapi/process.hpp"
#include "lib/ptrace/stop.hpp"

namespace wpckpt::restore {

namespace {

int signo_of(const std::vector<uint8_t>& siginfo) {
  int32_t signo = 0;
  if (siginfo.size() >= 4) std::memcpy(&signo, siginfo.data(), 4);
  return signo;
}

}  // namespace

Result<std::vector<pid_t>> create_threads(ptrace::Injector& main_inj, const state::ProcessState& state) {
  std::vector<pid_t> tids;
  for (const auto& t : state.threads) {
    if (t.is_main) {
      tids.push_back(main_inj.tid());
      continue;
    }
    uapi::CloneArgs args{};
    args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    uint64_t args_addr = main_inj.data();
    uint64_t tid_addr = args_addr + sizeof args;
    int32_t want = t.tid;
    args.set_tid = tid_addr;
    args.set_tid_size = 1;
    WPCKPT_TRY(main_inj.write(tid_addr, &want, sizeof want));
    WPCKPT_TRY(main_inj.write(args_addr, &args, sizeof args));
    WPCKPT_TRY_ASSIGN(long got, main_inj.checked_syscall("clone3 with set_tid", "thread " + std::to_string(t.tid),
                                     uapi::kNrClone3, args_addr, sizeof args));
    if (got != t.tid) return make_error(0, "clone3 with set_tid", "thread " + std::to_string(t.tid) + " got " + std::to_string(got));
    // The new thread is ours (TRACECLONE) and stops before its first instruction.
    WPCKPT_TRY_ASSIGN(bool alive, ptrace::wait_event_stop(static_cast<pid_t>(got), nullptr));
    if (!alive) return make_error(ESRCH, "attach new thread", std::to_string(got));
    tids.push_back(static_cast<pid_t>(got));
  }
  return tids;
}

Result<void> register_thread(ptrace::Injector& inj, pid_t pid, const state::ThreadState& thread) {
  std::string ctx = "thread " + std::to_string(thread.tid);
  if (thread.rseq.abi_pointer != 0) {
    WPCKPT_TRY(inj.checked_syscall("rseq", ctx, uapi::kNrRseq, thread.rseq.abi_pointer, thread.rseq.abi_size, 0,
                    thread.rseq.signature));
  }
  if (thread.altstack.flags != SS_DISABLE && thread.altstack.size != 0) {
    stack_t ss{};
    ss.ss_sp = reinterpret_cast<void*>(thread.altstack.sp);
    ss.ss_flags = thread.altstack.flags & static_cast<int>(uapi::kSsAutodisarm);
    ss.ss_size = thread.altstack.size;
    WPCKPT_TRY(inj.write(inj.data(), &ss, sizeof ss));
    WPCKPT_TRY(inj.checked_syscall("sigaltstack", ctx, SYS_sigaltstack, inj.data(), 0));
  }
  if (thread.clear_child_tid != 0) WPCKPT_TRY(inj.checked_syscall("set_tid_address", ctx, SYS_set_tid_address, thread.clear_child_tid));
  if (!thread.name.empty()) {
    char name[16] = {};
    std::memcpy(name, thread.name.data(), std::min<size_t>(thread.name.size(), 15));
    WPCKPT_TRY(inj.write(inj.data(), name, sizeof name));
    WPCKPT_TRY(inj.checked_syscall("prctl(PR_SET_NAME)", ctx, SYS_prctl, PR_SET_NAME, inj.data()));
  }
  // Signals stay blocked in the injector's session: queued now, delivered after detach.
  for (const auto& info : thread.pending) {
    WPCKPT_TRY(inj.write(inj.data(), info.data(), info.size()));
    WPCKPT_TRY(inj.checked_syscall("rt_tgsigqueueinfo", ctx + " signal " + std::to_string(signo_of(info)), SYS_rt_tgsigqueueinfo,
                    static_cast<uint64_t>(pid), static_cast<uint64_t>(thread.tid),
                    static_cast<uint64_t>(signo_of(info)), inj.data()));
  }
  return ok();
}

Result<void> queue_shared_signals(ptrace::Injector& main_inj, const state::ProcessState& state) {
  for (const auto& info : state.shared_pending) {
    WPCKPT_TRY(main_inj.write(main_inj.data(), info.data(), info.size()));
    WPCKPT_TRY(main_inj.checked_syscall("rt_sigqueueinfo", "signal " + std::to_string(signo_of(info)), SYS_rt_sigqueueinfo,
                    static_cast<uint64_t>(state.pid), static_cast<uint64_t>(signo_of(info)), main_inj.data()));
  }
  return ok();
}

// The kernel's restart codes (include/linux/errno.h; not in the UAPI headers).
constexpr long long kErestartNoIntr = -513;
constexpr long long kErestartRestartBlock = -516;

// A call interrupted with -ERESTART_RESTARTBLOCK whose restart is the call
// itself with its own arguments (still in rdi, rsi, rdx, r10: the kernel
// keeps them): poll (its timeout, if any, starts again: later, never a
// spurious error; tail -f and event loops wait with poll(-1) and treat
// EINTR as fatal), and the calls with an absolute deadline.
bool restarts_as_itself(const ptrace::Registers& r) {
  constexpr int kTimerAbstime = 1, kFutexCmdMask = 0x7f, kFutexWaitBitset = 9;
  switch (r.orig_rax) {
    case SYS_poll: return true;
    case SYS_clock_nanosleep: return (r.rsi & kTimerAbstime) != 0;
    case SYS_futex: return (r.rsi & kFutexCmdMask) == kFutexWaitBitset;
    default: return false;
  }
}

ptrace::Registers resume_registers(const state::ThreadState& thread) {
  // As recorded. A thread frozen inside a system call has orig_rax = the
  // call and rax = -ERESTART*; every restored thread is detached from a stop
  // on the kernel's signal path, so the kernel itself decides on the way
  // out: restart the call, or return EINTR if a handler runs first (as it
  // would have without the checkpoint). -ERESTART_RESTARTBLOCK would become
  // restart_syscall, which in a new thread returns EINTR (the remaining time
  // of nanosleep & co lived in the old thread): the calls that can simply
  // be issued again are (restarts_as_itself); relative sleeps still see EINTR.
  ptrace::Registers r{};
  static_assert(sizeof r == sizeof thread.regs);
  std::memcpy(&r, &thread.regs, sizeof r);
  if (static_cast<long long>(r.rax) == kErestartRestartBlock && restarts_as_itself(r))
    r.rax = static_cast<unsigned long long>(kErestartNoIntr);
  return r;
}

Result<void> set_thread_state(pid_t tid, const state::ThreadState& thread) {
  WPCKPT_TRY(ptrace::set_regs(tid, resume_registers(thread)));
  if (!thread.xsave.empty()) {
    std::vector<uint8_t> xsave = thread.xsave;
    xsave.resize(ptrace::xsave_size(), 0);  // a larger area here: the extra features stay in their init state
    WPCKPT_TRY(ptrace::set_xsave(tid, xsave));
  }
  WPCKPT_TRY(ptrace::set_sigmask(tid, thread.sigmask));
  return ok();
}

}  // namespace wpckpt::restore
