// timerfd: clock, interval and the time left, from fdinfo; re-armed relative
// to the restore.
#include <fcntl.h>
#include <sys/timerfd.h>

#include <cstdio>

#include "lib/fds/fd_handler.hpp"

namespace wpckpt::fds {
namespace {

class TimerfdHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar&) const override {
    const FdInfo& info = *src.info;
    WPCKPT_TRY_ASSIGN(f.details["clockid"], info.number<int>("clockid"));
    WPCKPT_TRY_ASSIGN(f.details["ticks"], info.number<uint64_t>("ticks"));
    for (const char* key : {"it_value", "it_interval"}) {
      long long sec = 0, nsec = 0;
      if (std::sscanf(info.get(key).c_str(), "(%lld, %lld)", &sec, &nsec) != 2)
        return make_error(EINVAL, "parse", info.where + " " + key + " ('" + info.get(key) + "')");
      f.details[key] = {sec, nsec};
    }
    return ok();
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader&, FdObject& o) const override {
    o.clockid = CLOCK_MONOTONIC;
    WPCKPT_TRY(detail(f, "clockid", o.clockid));
    o.flags = f.flags & O_NONBLOCK;
    // fdinfo's it_value is the time left: re-armed relative to now.
    std::pair<uint64_t, uint64_t> interval{}, value{};
    uint64_t ticks = 0;
    WPCKPT_TRY(detail(f, "it_interval", interval));
    WPCKPT_TRY(detail(f, "it_value", value));
    WPCKPT_TRY(detail(f, "ticks", ticks));
    if (interval.second >= 1'000'000'000 || value.second >= 1'000'000'000 || interval.first > INT64_MAX ||
        value.first > INT64_MAX)
      return state::field_error("fd " + std::to_string(f.fd) + " details", "has a timer out of range");
    o.timer[0] = interval.first, o.timer[1] = interval.second;
    o.timer[2] = value.first, o.timer[3] = value.second;
    // Expirations not read yet (fdinfo then shows it_value 0 for a periodic
    // timer): fire at once, so the next read sees at least one.
    bool armed = o.timer[2] != 0 || o.timer[3] != 0;
    if (ticks > 0 || (!armed && (o.timer[0] != 0 || o.timer[1] != 0))) {
      o.timer[2] = 0;
      o.timer[3] = 1;
    }
    return ok();
  }

  int32_t create(FdObject& o) const override {
    o.tmp[0] = timerfd_create(o.clockid, o.flags);
    if (o.tmp[0] < 0) return kStepTimerfd;
    itimerspec ts{};
    ts.it_interval = {static_cast<time_t>(o.timer[0]), static_cast<long>(o.timer[1])};
    ts.it_value = {static_cast<time_t>(o.timer[2]), static_cast<long>(o.timer[3])};
    return timerfd_settime(o.tmp[0], 0, &ts, nullptr) != 0 ? kStepTimerfd : 0;
  }
};

constinit const TimerfdHandler kTimerfd;

}  // namespace

const FdHandler& timerfd_handler() { return kTimerfd; }

}  // namespace wpckpt::fds
