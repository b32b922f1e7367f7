// /proc/PID/timers as this kernel writes it, parsed: timers created here with
// each kind of notification and a CPU clock.
#include "lib/dump/timer_capture.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace wpckpt::dump {
namespace {

struct Timer {
  timer_t id{};
  bool made = false;
  Timer(clockid_t clock, sigevent* ev) { made = timer_create(clock, ev, &id) == 0; }
  ~Timer() {
    if (made) timer_delete(id);
  }
  int number() const { return static_cast<int>(reinterpret_cast<intptr_t>(id)); }
};

TEST(TimerCapture, ParsesWhatThisKernelListsInProcTimers) {
  sigevent sig{};
  sig.sigev_notify = SIGEV_SIGNAL;
  sig.sigev_signo = SIGRTMIN + 1;
  sig.sigev_value.sival_ptr = reinterpret_cast<void*>(0x1234abcdULL);
  Timer a(CLOCK_MONOTONIC, &sig);
  sigevent tid = sig;
  tid.sigev_notify = SIGEV_THREAD_ID;
  tid._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
  Timer b(CLOCK_REALTIME, &tid);
  sigevent none{};
  none.sigev_notify = SIGEV_NONE;
  clockid_t cpu{};
  ASSERT_EQ(clock_getcpuclockid(0, &cpu), 0);
  Timer c(cpu, &none);
  ASSERT_TRUE(a.made && b.made && c.made);

  std::ifstream in("/proc/self/timers");
  std::stringstream text;
  text << in.rdbuf();
  auto timers = parse_proc_timers(text.str(), "/proc/self/timers");
  ASSERT_TRUE(timers) << timers.error().message();
  ASSERT_EQ(timers->size(), 3u) << text.str();
  const auto& ta = timers->at(0);
  EXPECT_EQ(ta.id, a.number());
  EXPECT_EQ(ta.clock, CLOCK_MONOTONIC);
  EXPECT_EQ(ta.signo, SIGRTMIN + 1);
  EXPECT_EQ(ta.sigev_value, 0x1234abcdu);
  EXPECT_EQ(ta.notify, SIGEV_SIGNAL);
  const auto& tb = timers->at(1);
  EXPECT_EQ(tb.id, b.number());
  EXPECT_EQ(tb.notify, SIGEV_THREAD_ID);
  EXPECT_EQ(tb.notify_tid, tid._sigev_un._tid);
  const auto& tc = timers->at(2);
  EXPECT_EQ(tc.id, c.number());
  EXPECT_EQ(tc.clock, cpu);
  EXPECT_EQ(tc.notify, SIGEV_NONE);
}

TEST(TimerCapture, AFieldBeforeAnIdIsAnError) {
  auto r = parse_proc_timers("signal: 14/0\n", "timers");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("before the first ID"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace wpckpt::dump
