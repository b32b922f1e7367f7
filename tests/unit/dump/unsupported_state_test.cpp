// The children check on real processes: a sleeping child and a zombie of the
// test itself are found by /proc/PID/task/*/children and by the /proc scan
// used on kernels without that file, and the refusal names both.
#include "lib/dump/unsupported_state.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace wpckpt::dump {
namespace {

// Children forked here, killed and reaped when the test ends.
struct Forked {
  std::vector<pid_t> pids;
  ~Forked() {
    for (pid_t p : pids) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
  }
  pid_t sleeper() {
    pid_t p = ::fork();
    if (p == 0) {
      for (;;) ::pause();
    }
    pids.push_back(p);
    return p;
  }
  pid_t zombie() {
    pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    pids.push_back(p);
    siginfo_t si{};
    ::waitid(P_PID, static_cast<id_t>(p), &si, WEXITED | WNOWAIT);  // exited, not reaped
    return p;
  }
};

TEST(UnsupportedState, ChildrenAndZombiesAreFoundBothWays) {
  auto before = children_of(::getpid());
  ASSERT_TRUE(before.ok()) << before.error().message();
  Forked f;
  pid_t sleeper = f.sleeper();
  pid_t zombie = f.zombie();
  for (auto found : {children_of(::getpid()), children_by_proc_scan(::getpid())}) {
    ASSERT_TRUE(found.ok()) << found.error().message();
    std::vector<pid_t> got = *found;
    EXPECT_NE(std::find(got.begin(), got.end(), sleeper), got.end());
    EXPECT_NE(std::find(got.begin(), got.end(), zombie), got.end());
    EXPECT_EQ(got.size(), before->size() + 2);
  }
  auto refusal = refuse_unsupported_state(::getpid(), "dump", TargetState::Frozen);
  ASSERT_FALSE(refusal.ok());
  EXPECT_EQ(refusal.error().err, EOPNOTSUPP);
  EXPECT_NE(refusal.error().context.find(std::to_string(sleeper)), std::string::npos) << refusal.error().context;
  EXPECT_NE(refusal.error().context.find(std::to_string(zombie) + " ("), std::string::npos);
  EXPECT_NE(refusal.error().context.find("zombie"), std::string::npos) << refusal.error().context;
  EXPECT_FALSE(refusal.error().hint.empty());
}

// A running process whose child is gone (exited and waited for) within the
// grace time is not refused; a frozen one gets no grace.
TEST(UnsupportedState, ARunningProcessGetsGraceForAChildThatEnds) {
  auto before = children_of(::getpid());
  ASSERT_TRUE(before.ok() && before->empty()) << "the test process has children already";
  pid_t p = ::fork();
  if (p == 0) {
    ::usleep(20'000);
    ::_exit(0);
  }
  ASSERT_GT(p, 0);
  std::thread reaper([p] { ::waitpid(p, nullptr, 0); });
  auto running = refuse_unsupported_state(::getpid(), "pre-dump", TargetState::Running);
  reaper.join();
  EXPECT_TRUE(running.ok()) << running.error().message();

  Forked f;
  f.sleeper();
  auto still = refuse_unsupported_state(::getpid(), "pre-dump", TargetState::Running);
  EXPECT_FALSE(still.ok());  // a child that stays is refused after the grace time
}

}  // namespace
}  // namespace wpckpt::dump
