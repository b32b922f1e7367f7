#include "lib/dump/timer_capture.hpp"

#include <fmt/core.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include <algorithm>
#include <sstream>

#include "lib/base/log.hpp"
#include "lib/base/parse_number.hpp"
#include "lib/dump/process_capture.hpp"
#include "lib/ptrace/injector.hpp"

namespace wpckpt::dump {
namespace {

constexpr int kSigevThreadId = 4;  // SIGEV_THREAD_ID (glibc spells it only with _GNU_SOURCE)

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

// "notify: signal/pid.123", "notify: none/pid.123", "notify: signal/tid.456".
Result<void> parse_notify(std::string_view value, state::PosixTimer& t, const std::string& where) {
  size_t slash = value.find('/'), dot = value.find('.');
  if (slash == std::string_view::npos || dot == std::string_view::npos || dot < slash)
    return make_error(EINVAL, "parse", where + " notify '" + std::string(value) + "'");
  std::string_view how = value.substr(0, slash), target = value.substr(slash + 1, dot - slash - 1);
  if (how == "signal") t.notify = SIGEV_SIGNAL;
  else if (how == "none") t.notify = SIGEV_NONE;
  else
    return make_error(EOPNOTSUPP, "dump", fmt::format("POSIX timer {} notifies by '{}'", t.id, how))
        .with_hint("only timers that send a signal or notify nobody (SIGEV_SIGNAL, SIGEV_THREAD_ID, SIGEV_NONE) "
                   "are restored. Nothing was changed in the process");
  WPCKPT_TRY_ASSIGN(int id, parse_number<int>(value.substr(dot + 1), 10, where + " notify"));
  if (target == "tid") {
    t.notify |= kSigevThreadId;
    t.notify_tid = id;
  }
  return ok();
}

}  // namespace

static_assert(kItimerKinds[0] == ITIMER_REAL && kItimerKinds[1] == ITIMER_VIRTUAL && kItimerKinds[2] == ITIMER_PROF);

void add_itimer(int which, const struct itimerval& v, state::ProcessState& out) {
  // ITIMER_REAL reads 0 left while its SIGALRM is pending: the kernel arms
  // it again when the signal is taken (docs/KERNEL.md §15); its interval
  // says it is periodic. The CPU timers re-arm themselves: 0 is disarmed.
  bool zero = v.it_value.tv_sec == 0 && v.it_value.tv_usec == 0;
  bool periodic = v.it_interval.tv_sec != 0 || v.it_interval.tv_usec != 0;
  if (zero && !(which == ITIMER_REAL && periodic)) return;
  out.itimers.push_back({which, v.it_value.tv_sec, v.it_value.tv_usec, v.it_interval.tv_sec, v.it_interval.tv_usec});
}

Result<void> capture_posix_timers(ptrace::Injector& inj, pid_t pid, state::ProcessState& out) {
  const std::string where = fmt::format("/proc/{}/timers", pid);
  auto text = read_text(where);
  if (!text) {
    // As before timers were saved: such a kernel shows no timers to anyone.
    log::debug("cannot list the POSIX timers of {}: {} (kernel without CONFIG_CHECKPOINT_RESTORE?)", pid,
               text.error().message());
    return ok();
  }
  WPCKPT_TRY_ASSIGN(out.posix_timers, parse_proc_timers(*text, where));
  for (state::PosixTimer& t : out.posix_timers) {
    const std::string what = fmt::format("POSIX timer {}", t.id);
    WPCKPT_TRY(inj.checked_syscall("timer_gettime", what, SYS_timer_gettime, static_cast<uint64_t>(t.id),
                                   inj.data()));
    struct itimerspec v {};
    WPCKPT_TRY(inj.read(inj.data(), &v, sizeof v));
    t.value_sec = v.it_value.tv_sec, t.value_nsec = v.it_value.tv_nsec;
    t.interval_sec = v.it_interval.tv_sec, t.interval_nsec = v.it_interval.tv_nsec;
    WPCKPT_TRY_ASSIGN(long overrun, inj.checked_syscall("timer_getoverrun", what, SYS_timer_getoverrun,
                                                        static_cast<uint64_t>(t.id)));
    t.overrun = static_cast<int>(overrun);
  }
  return ok();
}

// Per timer: "ID: 0", "signal: 14/0000000000000000", "notify: signal/pid.123", "ClockID: 1".
Result<std::vector<state::PosixTimer>> parse_proc_timers(const std::string& text, const std::string& where) {
  std::vector<state::PosixTimer> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string_view key = std::string_view(line).substr(0, colon);
    std::string_view value = trimmed(std::string_view(line).substr(colon + 1));
    if (key == "ID") {
      out.emplace_back();
      WPCKPT_TRY_ASSIGN(out.back().id, parse_number<int>(value, 10, where + " ID"));
      continue;
    }
    if (out.empty()) return make_error(EINVAL, "parse", where + " (a field before the first ID)");
    state::PosixTimer& t = out.back();
    if (key == "signal") {
      size_t slash = value.find('/');
      if (slash == std::string_view::npos) return make_error(EINVAL, "parse", where + " signal");
      WPCKPT_TRY_ASSIGN(t.signo, parse_number<int>(value.substr(0, slash), 10, where + " signal"));
      WPCKPT_TRY_ASSIGN(t.sigev_value, parse_number<uint64_t>(value.substr(slash + 1), 16, where + " sigev_value"));
    } else if (key == "notify") {
      WPCKPT_TRY(parse_notify(value, t, where));
    } else if (key == "ClockID") {
      WPCKPT_TRY_ASSIGN(t.clock, parse_number<int>(value, 10, where + " ClockID"));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

}  // namespace wpckpt::dump
