#include "lib/restore/timers.hpp"

#include <fmt/core.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "lib/base/uapi/process.hpp"
#include "lib/probe/features.hpp"

namespace wpckpt::restore {
namespace {

constexpr const char* kFeature = "timer_create_restore_ids";

// An armed timer is never given a zero value: that would disarm it. 0 left
// is a periodic ITIMER_REAL whose SIGALRM was pending at the dump (restored
// with the pending signals): it runs on from the next period.
struct timeval armed_value(const state::IntervalTimer& t) {
  if (t.value_sec != 0 || t.value_usec != 0) return {t.value_sec, t.value_usec};
  if (t.interval_sec != 0 || t.interval_usec != 0) return {t.interval_sec, t.interval_usec};
  return {0, 1};
}

Result<void> restore_itimers(ptrace::Injector& inj, const state::ProcessState& st) {
  for (const state::IntervalTimer& t : st.itimers) {
    struct itimerval v {};
    v.it_value = armed_value(t);
    v.it_interval = {t.interval_sec, t.interval_usec};
    WPCKPT_TRY(inj.write(inj.data(), &v, sizeof v));
    WPCKPT_TRY(inj.checked_syscall("setitimer", fmt::format("interval timer {}", t.which), SYS_setitimer,
                                   static_cast<uint64_t>(t.which), inj.data(), 0));
  }
  return ok();
}

// Scratch layout: the sigevent, the id timer_create reads and writes, the itimerspec.
constexpr uint64_t kIdOffset = sizeof(uapi::KernelSigevent);
constexpr uint64_t kSpecOffset = kIdOffset + 8;

Result<void> create_posix_timer(ptrace::Injector& inj, const state::PosixTimer& t) {
  const std::string what = fmt::format("POSIX timer {} (clock {}, signal {})", t.id, t.clock, t.signo);
  uapi::KernelSigevent ev{};
  ev.value = t.sigev_value;
  ev.signo = t.signo;
  ev.notify = t.notify;
  ev.tid = t.notify_tid;
  int32_t id = t.id;
  WPCKPT_TRY(inj.write(inj.data(), &ev, sizeof ev));
  WPCKPT_TRY(inj.write(inj.data() + kIdOffset, &id, sizeof id));
  WPCKPT_TRY(inj.checked_syscall("timer_create", what, SYS_timer_create, static_cast<uint64_t>(t.clock), inj.data(),
                                 inj.data() + kIdOffset));
  WPCKPT_TRY(inj.read(inj.data() + kIdOffset, &id, sizeof id));
  if (id != t.id) return make_error(EIO, "timer_create", fmt::format("{}: the kernel gave id {}", what, id));
  if (t.value_sec == 0 && t.value_nsec == 0) return ok();  // created disarmed
  struct itimerspec spec {};
  spec.it_value = {t.value_sec, t.value_nsec};
  spec.it_interval = {t.interval_sec, t.interval_nsec};
  WPCKPT_TRY(inj.write(inj.data() + kSpecOffset, &spec, sizeof spec));
  WPCKPT_TRY(inj.checked_syscall("timer_settime", what, SYS_timer_settime, static_cast<uint64_t>(t.id), 0,
                                 inj.data() + kSpecOffset, 0));
  return ok();
}

Result<void> set_restore_ids(ptrace::Injector& inj, unsigned long on) {
  WPCKPT_TRY(inj.checked_syscall("prctl(PR_TIMER_CREATE_RESTORE_IDS)", on ? "on" : "off", SYS_prctl,
                                 uapi::kPrTimerCreateRestoreIds, on, 0, 0, 0));
  return ok();
}

}  // namespace

Result<void> check_timers_restorable(const state::ProcessState& st) {
  if (st.posix_timers.empty() || probe::has_feature(kFeature)) return ok();
  auto s = probe::feature(kFeature);
  return make_error(ENOTSUP, "restore",
                    fmt::format("process {} had {} POSIX timer(s) (timer_create), and this kernel cannot give "
                                "them their ids: feature {} is {}",
                                st.pid, st.posix_timers.size(), kFeature,
                                s && s->disabled ? s->detail : "missing (" + (s ? s->detail : "not probed") + ")"))
      .with_hint("restore it on Linux 6.13 or later (prctl PR_TIMER_CREATE_RESTORE_IDS); see `wpckpt check`. "
                 "Nothing was started");
}

Result<void> restore_timers(ptrace::Injector& inj, const state::ProcessState& st) {
  WPCKPT_TRY(restore_itimers(inj, st));
  if (st.posix_timers.empty()) return ok();
  WPCKPT_TRY(set_restore_ids(inj, uapi::kPrTimerCreateRestoreIdsOn));
  for (const state::PosixTimer& t : st.posix_timers) WPCKPT_TRY(create_posix_timer(inj, t));
  return set_restore_ids(inj, uapi::kPrTimerCreateRestoreIdsOff);
}

}  // namespace wpckpt::restore
