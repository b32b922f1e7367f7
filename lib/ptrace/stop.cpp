#include "lib/ptrace/stop.hpp"

#include <fmt/core.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "lib/base/uapi/process.hpp"

namespace wpckpt::ptrace {
long trace_options() { return uapi::kPtraceOTraceclone | PTRACE_O_TRACESYSGOOD; }

namespace {

Stop stop_from_status(pid_t tid, int status) {
  Stop stop;
  stop.status = status;
  if (WIFEXITED(status) || WIFSIGNALED(status)) return stop;
  int event = status >> 16;
  int sig = WSTOPSIG(status);
  stop.signal = sig;
  if (event == uapi::kPtraceEventStop) {
    stop.kind = StopKind::EventStop;
  } else if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK) {
    stop.kind = StopKind::NewThread;
    unsigned long msg = 0;
    if (::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &msg) == 0) stop.new_tid = static_cast<pid_t>(msg);
  } else if (event != 0) {
    stop.kind = StopKind::NewThread;  // another event stop (exec, exit): just let it pass
  } else if (sig == (SIGTRAP | 0x80)) {
    stop.kind = StopKind::SyscallStop;
  } else {
    stop.kind = StopKind::SignalStop;
  }
  return stop;
}

Result<std::optional<Stop>> waited_stop(pid_t tid, int flags) {
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(tid, &status, __WALL | flags);
    if (r == tid) return std::optional<Stop>(stop_from_status(tid, status));
    if (r == 0) return std::optional<Stop>();
    if (r < 0 && errno == EINTR) continue;
    return errno_error("waitpid", fmt::format("thread {}", tid));
  }
}

}  // namespace

Result<Stop> wait_stop(pid_t tid) {
  WPCKPT_TRY_ASSIGN(std::optional<Stop> stop, waited_stop(tid, 0));
  return *stop;
}

Result<std::optional<Stop>> poll_stop(pid_t tid) { return waited_stop(tid, WNOHANG); }

Result<bool> wait_event_stop(pid_t tid, std::vector<pid_t>* new_threads) {
  for (;;) {
    WPCKPT_TRY_ASSIGN(Stop stop, wait_stop(tid));
    int resume_signal = 0;
    switch (stop.kind) {
      case StopKind::Exited:
        return false;
      case StopKind::EventStop:
        return true;
      case StopKind::NewThread:
        // Only clones of threads are ours (TRACECLONE); a fork child is not traced.
        if (stop.new_tid > 0 && (stop.status >> 16) == PTRACE_EVENT_CLONE && new_threads)
          new_threads->push_back(stop.new_tid);
        break;
      case StopKind::SyscallStop:
        break;
      case StopKind::SignalStop:
        resume_signal = stop.signal;  // deliver it: nothing the target was sent is lost
        break;
    }
    // Any trap consumes a pending interrupt: resume and interrupt again.
    if (::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(resume_signal))) != 0 &&
        errno != ESRCH)
      return errno_error("PTRACE_CONT", fmt::format("thread {}", tid));
    if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceInterrupt), tid, nullptr, nullptr) != 0 &&
        errno != ESRCH)
      return errno_error("PTRACE_INTERRUPT", fmt::format("thread {}", tid));
  }
}

Result<bool> interrupt_and_wait(pid_t tid, std::vector<pid_t>* new_threads) {
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceInterrupt), tid, nullptr, nullptr) != 0) {
    if (errno != ESRCH) return errno_error("PTRACE_INTERRUPT", fmt::format("thread {}", tid));
  }
  return wait_event_stop(tid, new_threads);
}

}  // namespace wpckpt::ptrace
