#include "lib/dump/thread_capture.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <array>
#include <cstring>
#include <vector>

#include "lib/base/log.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/regs.hpp"

namespace wpckpt::dump {

Result<state::ThreadState> capture_thread(pid_t pid, pid_t tid, ptrace::Injector& inj) {
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
  const uint64_t altstack = inj.data(), tid_address = altstack + 32, name_at = tid_address + 16;
  const ptrace::Injector::Call calls[] = {{SYS_sigaltstack, {0, altstack}},
                                          {SYS_prctl, {PR_GET_TID_ADDRESS, tid_address}},
                                          {SYS_prctl, {PR_GET_NAME, name_at}}};
  WPCKPT_TRY_ASSIGN(std::vector<long> rc, inj.batch(calls));
  const std::string context = "thread " + std::to_string(tid);
  if (rc[0] != 0) return make_error(static_cast<int>(-rc[0]), "injected sigaltstack", context);
  if (rc[2] != 0) return make_error(static_cast<int>(-rc[2]), "injected prctl(PR_GET_NAME)", context);
  // One read for all three results.
  static_assert(sizeof(stack_t) <= 32);
  std::array<char, 64> out{};
  WPCKPT_TRY(inj.read(altstack, out.data(), out.size()));
  stack_t ss{};
  std::memcpy(&ss, out.data(), sizeof ss);
  t.altstack = {reinterpret_cast<uint64_t>(ss.ss_sp), ss.ss_flags, ss.ss_size};
  if (rc[1] == 0) std::memcpy(&t.clear_child_tid, out.data() + (tid_address - altstack), sizeof t.clear_child_tid);
  const char* name = out.data() + (name_at - altstack);
  t.name.assign(name, ::strnlen(name, 16));
  return t;
}

}  // namespace wpckpt::dump
