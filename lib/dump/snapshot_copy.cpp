#include "lib/dump/snapshot_copy.hpp"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <string>

#include "lib/base/log.hpp"
#include "lib/base/text_file.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/stop.hpp"

namespace wpckpt::dump {

Result<ForkedCopy> ForkedCopy::make(const ptrace::Freezer& frozen) {
  const pid_t main = frozen.tids().front();
  using Clock = std::chrono::steady_clock;
  auto us = [](auto a, auto b) { return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count(); };
  auto t0 = Clock::now();
  WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(main));
  auto t_prepared = Clock::now();
  // clone(flags = 0: a new process, exit signal 0; the stack is the copy's own).
  WPCKPT_TRY_ASSIGN(long r, inj->checked_syscall("clone", "a copy of process " + std::to_string(frozen.pid()) +
                                                               " for the snapshot", SYS_clone, 0, 0, 0, 0, 0));
  pid_t copy = static_cast<pid_t>(r);
  auto t_cloned = Clock::now();
  bool traced = false;
  for (pid_t t : inj->new_threads()) traced = traced || t == copy;
  if (!traced) {
    // Not ours to hold stopped: end it at once, and reap it while the
    // process is still frozen (the injector is still there).
    ::kill(copy, SIGKILL);
    (void)inj->syscall(SYS_waitid, 1 /* P_PID */, static_cast<uint64_t>(copy), inj->data(), WEXITED | __WALL, 0);
    return make_error(ESRCH, "snapshot copy", "pid " + std::to_string(copy) + " was not attached")
        .with_hint("report this: the clone event of the copy did not arrive");
  }
  ForkedCopy out(frozen.pid(), copy);  // from here on, killed whatever fails
  // The copy must never run, even if wpckpt dies: killed with its tracer.
  WPCKPT_TRY(ptrace::wait_stop(copy));
  if (::ptrace(PTRACE_SETOPTIONS, copy, nullptr, reinterpret_cast<void*>(ptrace::trace_options() | PTRACE_O_EXITKILL)) != 0)
    return errno_error("PTRACE_SETOPTIONS", "the snapshot's copy " + std::to_string(copy));
  auto t_stopped = Clock::now();
  WPCKPT_TRY(inj->cure());
  auto t_cured = Clock::now();
  // If memory runs out while it is read, the copy goes, not the process.
  if (std::ofstream adj("/proc/" + std::to_string(copy) + "/oom_score_adj"); !(adj << "1000\n"))
    log::warn("could not make the snapshot's copy {} the OOM killer's first choice", copy);
  log::debug("snapshot copy (us): inject {}, clone {}, copy stopped {}, cure {}, oom_score_adj {}", us(t0, t_prepared),
             us(t_prepared, t_cloned), us(t_cloned, t_stopped), us(t_stopped, t_cured), us(t_cured, Clock::now()));
  return out;
}

bool ForkedCopy::died() const {
  if (copy_ == 0) return false;
  const std::string proc = "/proc/" + std::to_string(copy_);
  std::string all = read_text_file(proc + "/stat").value_or("");
  auto paren = all.rfind(')');
  if (paren == std::string::npos || paren + 2 >= all.size() || all[paren + 2] == 'Z' || all[paren + 2] == 'X') return true;
  // Still exiting (an OOM kill in progress): its memory is gone already.
  std::ifstream status(proc + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return false;
  return true;
}

ForkedCopy::ForkedCopy(ForkedCopy&& o) noexcept : process_(o.process_), copy_(std::exchange(o.copy_, 0)) {}

ForkedCopy::~ForkedCopy() {
  if (copy_ == 0) return;
  if (auto r = release(); !r)
    log::warn("the snapshot's copy {} of process {} is left as a zombie child of it: {}", copy_, process_,
              r.error().message());
}

Result<double> ForkedCopy::release() {
  if (copy_ == 0) return 0.0;
  const pid_t copy = std::exchange(copy_, 0);
  ::kill(copy, SIGKILL);
  int status = 0;
  while (::waitpid(copy, &status, __WALL) < 0 && errno == EINTR) {
  }
  // Its parent is the process: only the process can reap it.
  auto t0 = std::chrono::steady_clock::now();
  WPCKPT_TRY_ASSIGN(ptrace::Freezer frozen, ptrace::Freezer::freeze(process_));
  WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(frozen.tids().front()));
  constexpr int kPPid = 1;  // P_PID
  WPCKPT_TRY(inj->checked_syscall("waitid", "the snapshot's copy " + std::to_string(copy), SYS_waitid, kPPid,
                                  static_cast<uint64_t>(copy), inj->data(), WEXITED | __WALL, 0));
  WPCKPT_TRY(inj->cure());
  frozen.detach();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> not_copied_by_fork(pid_t pid, const std::vector<tracker::Vma>* before) {
  WPCKPT_TRY_ASSIGN(auto vmas, before ? tracker::read_maps_reusing_flags(pid, *before) : tracker::read_smaps(pid));
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const tracker::Vma& v : vmas)
    if (v.has_flag("dc") || v.has_flag("wf")) out.emplace_back(v.start, v.end);
  return out;
}

}  // namespace wpckpt::dump
