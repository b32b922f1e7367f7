#include "lib/dump/thread_capture.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "lib/base/log.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/regs.hpp"

namespace wpckpt::dump {

namespace {

// Where the injected calls leave their results, in the thread's slot.
struct ResultsAt {
  uint64_t altstack, tid_address, name;
};
ResultsAt results_at(const ptrace::Injector& inj) {
  const uint64_t altstack = inj.data();
  return {altstack, altstack + 32, altstack + 48};
}

}  // namespace

Result<state::ThreadState> begin_thread_capture(pid_t pid, pid_t tid, ptrace::Injector& inj) {
  state::ThreadState t;
  t.tid = tid;
  t.is_main = tid == pid;
  ptrace::Registers regs = inj.saved_regs();
  WPCKPT_TRY_ASSIGN(t.xsave, ptrace::get_xsave(tid));
  t.sigmask = inj.saved_sigmask();
  WPCKPT_TRY_ASSIGN(t.pending, ptrace::peek_pending(tid, false));
  WPCKPT_TRY_ASSIGN(ptrace::RseqConfig rseq, ptrace::get_rseq(tid));
  t.rseq = {rseq.abi_pointer, rseq.abi_size, rseq.signature};

  WPCKPT_TRY_ASSIGN(bool in_rseq, ptrace::rseq_fixup_ip(inj.mem_fd(), rseq, regs));
  if (in_rseq) log::debug("thread {} was inside an rseq critical section: it resumes at its abort handler", tid);
  static_assert(sizeof(regs) == sizeof(t.regs));
  std::memcpy(&t.regs, &regs, sizeof regs);

  // sigaltstack(NULL, &old); prctl(PR_GET_TID_ADDRESS) (glibc's pthread_join
  // relies on it); prctl(PR_GET_NAME): 16 bytes, NUL-terminated.
  const ResultsAt at = results_at(inj);
  const ptrace::Injector::Call calls[] = {{SYS_sigaltstack, {0, at.altstack}},
                                          {SYS_prctl, {PR_GET_TID_ADDRESS, at.tid_address}},
                                          {SYS_prctl, {PR_GET_NAME, at.name}}};
  WPCKPT_TRY(inj.begin_batch(calls));
  return t;
}

Result<void> finish_thread_capture(ptrace::Injector& inj, state::ThreadState& t) {
  WPCKPT_TRY_ASSIGN(std::vector<long> rc, inj.end_batch());
  const std::string context = "thread " + std::to_string(t.tid);
  if (rc.size() != 3)
    return make_error(EPROTO, "injected calls", context + ": " + std::to_string(rc.size()) + " results");
  if (rc[0] != 0) return make_error(static_cast<int>(-rc[0]), "injected sigaltstack", context);
  if (rc[2] != 0) return make_error(static_cast<int>(-rc[2]), "injected prctl(PR_GET_NAME)", context);
  // One read for all three results.
  const ResultsAt at = results_at(inj);
  static_assert(sizeof(stack_t) <= 32);
  std::array<char, 64> out{};
  WPCKPT_TRY(inj.read(at.altstack, out.data(), out.size()));
  stack_t ss{};
  std::memcpy(&ss, out.data(), sizeof ss);
  t.altstack = {reinterpret_cast<uint64_t>(ss.ss_sp), ss.ss_flags, ss.ss_size};
  if (rc[1] == 0)
    std::memcpy(&t.clear_child_tid, out.data() + (at.tid_address - at.altstack), sizeof t.clear_child_tid);
  const char* name = out.data() + (at.name - at.altstack);
  t.name.assign(name, ::strnlen(name, 16));
  return ok();
}

}  // namespace wpckpt::dump
