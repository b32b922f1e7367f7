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
  auto refusal = refuse_unsupported_state(::getpid(), "dump");
  ASSERT_FALSE(refusal.ok());
  EXPECT_EQ(refusal.error().err, EOPNOTSUPP);
  EXPECT_NE(refusal.error().context.find(std::to_string(sleeper)), std::string::npos) << refusal.error().context;
  EXPECT_NE(refusal.error().context.find(std::to_string(zombie) + " ("), std::string::npos);
  EXPECT_NE(refusal.error().context.find("zombie"), std::string::npos) << refusal.error().context;
  EXPECT_FALSE(refusal.error().hint.empty());
}

// Running too, a child is refused at once (no waiting for it to end): the
// verbs then take the process with its tree.
TEST(UnsupportedState, ARunningProcessWithAChildIsRefusedAtOnce) {
  auto before = children_of(::getpid());
  ASSERT_TRUE(before.ok() && before->empty()) << "the test process has children already";
  Forked f;
  pid_t sleeper = f.sleeper();
  auto running = refuse_unsupported_state(::getpid(), "pre-dump");
  ASSERT_FALSE(running.ok());
  EXPECT_EQ(running.error().err, EOPNOTSUPP);
  EXPECT_NE(running.error().context.find(std::to_string(sleeper)), std::string::npos) << running.error().context;
  EXPECT_TRUE(refuse_unsupported_state(::getpid(), "pre-dump", kDefaultGhostLimit, false, true).ok())
      << "a tree's member is not refused for its children";
}

}  // namespace
}  // namespace wpckpt::dump
