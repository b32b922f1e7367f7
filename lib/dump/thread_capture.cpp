#include "lib/dump/thread_capture.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cstring>

#include "lib/base/log.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/regs.hpp"

namespace wpckpt::dump {

Result<state::ThreadState> capture_thread(pid_t pid, pid_t tid) {
  state::ThreadState t;
  t.tid = tid;
  t.is_main = tid == pid;
  WPCKPT_TRY_ASSIGN(ptrace::Registers regs, ptrace::get_regs(tid));
  WPCKPT_TRY_ASSIGN(t.xsave, ptrace::get_xsave(tid));
  WPCKPT_TRY_ASSIGN(t.sigmask, ptrace::get_sigmask(tid));
  WPCKPT_TRY_ASSIGN(t.pending, ptrace::peek_pending(tid, false));
  WPCKPT_TRY_ASSIGN(ptrace::RseqConfig rseq, ptrace::get_rseq(tid));
  t.rseq = {rseq.abi_pointer, rseq.abi_size, rseq.signature};

  WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(tid));
  WPCKPT_TRY_ASSIGN(bool in_rseq, ptrace::rseq_fixup_ip(inj->mem_fd(), rseq, regs));
  if (in_rseq) log::debug("thread {} was inside an rseq critical section: it resumes at its abort handler", tid);
  static_assert(sizeof(regs) == sizeof(t.regs));
  std::memcpy(&t.regs, &regs, sizeof regs);

  // sigaltstack(NULL, &old)
  WPCKPT_TRY(inj->checked_syscall("injected sigaltstack", "thread " + std::to_string(tid), SYS_sigaltstack, 0,
                                  inj->data()));
  stack_t ss{};
  WPCKPT_TRY(inj->read(inj->data(), &ss, sizeof ss));
  t.altstack = {reinterpret_cast<uint64_t>(ss.ss_sp), ss.ss_flags, ss.ss_size};
  // prctl(PR_GET_TID_ADDRESS, &out): glibc's pthread_join relies on it.
  WPCKPT_TRY_ASSIGN(long rc, inj->syscall(SYS_prctl, PR_GET_TID_ADDRESS, inj->data()));
  if (rc == 0) WPCKPT_TRY(inj->read(inj->data(), &t.clear_child_tid, sizeof t.clear_child_tid));
  // prctl(PR_GET_NAME, buf): 16 bytes, NUL-terminated.
  WPCKPT_TRY(inj->checked_syscall("injected prctl(PR_GET_NAME)", "thread " + std::to_string(tid), SYS_prctl,
                                  PR_GET_NAME, inj->data()));
  char name[16] = {};
  WPCKPT_TRY(inj->read(inj->data(), name, sizeof name));
  t.name.assign(name, ::strnlen(name, sizeof name));
  WPCKPT_TRY(inj->cure());
  return t;
}

}  // namespace wpckpt::dump
