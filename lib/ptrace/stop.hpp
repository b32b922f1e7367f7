// Waiting for traced threads and telling their stops apart: the one place
// that interprets waitpid statuses of ptraced threads (SEIZE semantics).
// Used by the freezer and the injector; restore may use it for its child.
#pragma once

#include <sys/types.h>

#include <optional>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::ptrace {

// Options every thread we trace gets. TRACECLONE: new threads of a seized
// thread are attached automatically. TRACESYSGOOD: syscall stops report
// SIGTRAP|0x80, which is also what makes a tracer death at such a stop
// harmless (the kernel then "sends" the invalid signal 0x85, i.e. nothing).
// Never EXITKILL for dump targets: a dying tracer must leave them running.
long trace_options();

enum class StopKind {
  Exited,       // the thread is gone (exit or killed); it was reaped as our tracee
  EventStop,    // PTRACE_EVENT_STOP: interrupt or group stop; the frozen state
  SyscallStop,  // syscall entry or exit (PTRACE_SYSCALL)
  SignalStop,   // signal-delivery-stop; `signal` must be re-injected on resume
  NewThread,    // PTRACE_EVENT_CLONE/FORK/VFORK; `new_tid` is the child
};

struct Stop {
  StopKind kind = StopKind::Exited;
  int signal = 0;   // for SignalStop (and the stop signal of EventStop)
  pid_t new_tid = 0;
  int status = 0;   // raw waitpid status
};

// waitpid(tid, __WALL), retried on EINTR.
Result<Stop> wait_stop(pid_t tid);
// The same without blocking: nullopt while the thread has nothing to report.
Result<std::optional<Stop>> poll_stop(pid_t tid);

// Brings a seized thread into PTRACE_EVENT_STOP (the state the freezer
// leaves threads in): interrupts it and lets it pass any other stop first,
// re-injecting signals so none is lost. Returns false if the thread exited.
// Threads cloned meanwhile (TRACECLONE) are appended to `new_threads`.
Result<bool> interrupt_and_wait(pid_t tid, std::vector<pid_t>* new_threads);

// Same, for a thread that was already interrupted (or is auto-attached and
// will report its own event stop): only waits.
Result<bool> wait_event_stop(pid_t tid, std::vector<pid_t>* new_threads);

}  // namespace wpckpt::ptrace
