#include "lib/ptrace/freezer.hpp"

#include <dirent.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "lib/base/log.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/ptrace/stop.hpp"

namespace wpckpt::ptrace {
namespace {

Result<std::vector<pid_t>> list_tasks(pid_t pid) {
  std::string path = fmt::format("/proc/{}/task", pid);
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return errno_error("open", path);
  std::vector<pid_t> tids;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    tids.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
  }
  ::closedir(dir);
  return tids;
}

// "TracerPid:" and "State:" of a thread; tracer -1 if it is gone.
std::pair<pid_t, char> tracer_and_state(pid_t pid, pid_t tid) {
  std::ifstream in(fmt::format("/proc/{}/task/{}/status", pid, tid));
  std::string line;
  pid_t tracer = -1;
  char state = '?';
  while (std::getline(in, line)) {
    if (line.rfind("State:", 0) == 0 && line.size() > 7) state = line[line.find_first_not_of(" \t", 6)];
    if (line.rfind("TracerPid:", 0) == 0) tracer = static_cast<pid_t>(std::atoi(line.c_str() + 10));
  }
  return {tracer, state};
}

// Orders the leader first, the rest by tid.
void leader_first(pid_t pid, std::vector<pid_t>& tids) {
  std::sort(tids.begin(), tids.end(), [pid](pid_t a, pid_t b) {
    if ((a == pid) != (b == pid)) return a == pid;
    return a < b;
  });
}

}  // namespace

Result<Freezer> Freezer::freeze(pid_t pid) {
  auto t0 = std::chrono::steady_clock::now();
  Freezer frozen(pid, {});  // detaches what it holds if we return early
  std::set<pid_t> known;    // seized (or auto-attached), stopped or about to stop
  for (int pass = 0;; ++pass) {
    auto listed_or = list_tasks(pid);
    if (!listed_or && listed_or.error().err == ENOENT)
      return make_error(ESRCH, "freeze", fmt::format("process {}", pid)).with_hint("no such process (did it exit?)");
    WPCKPT_TRY_ASSIGN(auto listed, std::move(listed_or));
    std::vector<pid_t> to_wait;
    for (pid_t tid : listed) {
      if (known.count(tid)) continue;
      if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceSeize), tid, nullptr,
                   reinterpret_cast<void*>(trace_options())) == 0) {
        known.insert(tid);
        frozen.tids_.push_back(tid);
        if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceInterrupt), tid, nullptr, nullptr) != 0 &&
            errno != ESRCH)
          return errno_error("PTRACE_INTERRUPT", fmt::format("thread {}", tid));
        to_wait.push_back(tid);
        continue;
      }
      int err = errno;
      if (err == ESRCH) continue;  // exited between the listing and the seize
      auto [tracer, state] = tracer_and_state(pid, tid);
      if (err == EPERM && tracer == ::gettid()) {  // attached already by TRACECLONE
        known.insert(tid);
        frozen.tids_.push_back(tid);
        to_wait.push_back(tid);
        continue;
      }
      if (state == 'Z' || state == 'X' || tracer < 0) continue;  // a zombie leader, or gone
      if (tracer > 0)
        return make_error(EPERM, "PTRACE_SEIZE", fmt::format("thread {} of process {}", tid, pid))
            .with_hint(fmt::format("the process is traced by pid {} (a debugger?); detach it first", tracer));
      return make_error(err, "PTRACE_SEIZE", fmt::format("thread {} of process {}", tid, pid))
          .with_hint("run wpckpt as the same user as the process (or root), and check kernel.yama.ptrace_scope");
    }
    // Wait for every new thread's stop; clones reported meanwhile join the set.
    for (size_t i = 0; i < to_wait.size(); ++i) {
      std::vector<pid_t> cloned;
      WPCKPT_TRY_ASSIGN(bool alive, wait_event_stop(to_wait[i], &cloned));
      if (!alive) std::erase(frozen.tids_, to_wait[i]);
      for (pid_t c : cloned) {
        if (known.insert(c).second) {
          frozen.tids_.push_back(c);
          to_wait.push_back(c);
        }
      }
    }
    if (to_wait.empty()) break;  // a whole pass added nothing: the set is closed
  }
  if (frozen.tids_.empty())
    return make_error(ESRCH, "freeze", fmt::format("process {}", pid)).with_hint("the process exited");
  leader_first(pid, frozen.tids_);
  frozen.freezing_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::debug("froze process {}: {} threads in {:.3f} ms", pid, frozen.tids_.size(), frozen.freezing_seconds_ * 1e3);
  return frozen;
}

Freezer Freezer::adopt(pid_t pid, std::vector<pid_t> tids) {
  leader_first(pid, tids);
  return Freezer(pid, std::move(tids));
}

Freezer::Freezer(Freezer&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), tids_(std::move(o.tids_)), freezing_seconds_(o.freezing_seconds_) {
  o.tids_.clear();
}

Freezer& Freezer::operator=(Freezer&& o) noexcept {
  if (this != &o) {
    detach();
    pid_ = std::exchange(o.pid_, -1);
    tids_ = std::move(o.tids_);
    o.tids_.clear();
    freezing_seconds_ = o.freezing_seconds_;
  }
  return *this;
}

Freezer::~Freezer() { detach(); }

void Freezer::detach() {
  // Other threads before the leader: if the process died meanwhile, a dead
  // leader is not reported before its (traced, so ours to reap) threads.
  for (auto it = tids_.rbegin(); it != tids_.rend(); ++it) {
    pid_t tid = *it;
    if (::ptrace(PTRACE_DETACH, tid, nullptr, nullptr) == 0) continue;
    if (errno != ESRCH) {
      log::warn("PTRACE_DETACH thread {}: {}", tid, std::strerror(errno));
      continue;
    }
    // Not in a stop (interrupted but never waited for): stop it, then detach.
    auto alive = interrupt_and_wait(tid, nullptr);
    if (alive.ok() && *alive && ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr) != 0)
      log::warn("PTRACE_DETACH thread {}: {}", tid, std::strerror(errno));
  }
  tids_.clear();
}

void Freezer::kill() {
  if (pid_ > 0 && !tids_.empty()) {
    ::kill(pid_, SIGKILL);
    // Other threads first: a leader is not reported dead before its threads
    // are reaped, and traced threads are reaped by us.
    for (auto it = tids_.rbegin(); it != tids_.rend(); ++it) {
      pid_t tid = *it;
      // Reap the tracee notifications until each thread reports its death.
      for (;;) {
        auto stop = wait_stop(tid);
        if (!stop.ok() || stop->kind == StopKind::Exited) break;
        ::ptrace(PTRACE_CONT, tid, nullptr, nullptr);
      }
    }
  }
  tids_.clear();
}

}  // namespace wpckpt::ptrace
