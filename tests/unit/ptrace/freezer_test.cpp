// The freezer on real multi-threaded workloads: every thread in a tracing
// stop while frozen, none after; threads created during the freeze caught.
#include "lib/ptrace/freezer.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include <fstream>
#include <set>
#include <string>

#include "tests/support/selfcheck_workload.hpp"

namespace wpckpt::ptrace {
namespace {

// "State:" letter and TracerPid of one thread.
std::pair<char, int> thread_status(pid_t pid, pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
  std::string line;
  char state = '?';
  int tracer = -1;
  while (std::getline(in, line)) {
    if (line.rfind("State:", 0) == 0) state = line[line.find_first_not_of(" \t", 6)];
    if (line.rfind("TracerPid:", 0) == 0) tracer = std::stoi(line.substr(10));
  }
  return {state, tracer};
}

TEST(Freezer, StopsEveryThreadAndDetachesCleanly) {
  test::SelfcheckWorkload w({"-t", "4"});
  {
    auto frozen = Freezer::freeze(w.pid());
    ASSERT_TRUE(frozen.ok()) << frozen.error().message();
    auto tids = w.threads();
    EXPECT_EQ(std::set<pid_t>(tids.begin(), tids.end()),
              std::set<pid_t>(frozen->tids().begin(), frozen->tids().end()));
    EXPECT_EQ(frozen->tids().front(), w.pid());  // main thread first
    for (pid_t tid : tids) {
      auto [state, tracer] = thread_status(w.pid(), tid);
      EXPECT_EQ(state, 't') << "thread " << tid;
      EXPECT_EQ(tracer, gettid()) << "thread " << tid;
    }
    uint64_t ticks = w.ticks();
    usleep(300'000);
    EXPECT_EQ(w.ticks(), ticks) << "the main thread ticked while frozen";
  }
  for (pid_t tid : w.threads()) {
    auto [state, tracer] = thread_status(w.pid(), tid);
    EXPECT_NE(state, 't') << "thread " << tid;
    EXPECT_EQ(tracer, 0) << "thread " << tid;
  }
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

TEST(Freezer, CatchesThreadsCreatedDuringTheFreeze) {
  test::SelfcheckWorkload w({"-t", "2", "-c"});  // a thread that spawns threads without pause
  for (int round = 0; round < 20; ++round) {
    auto frozen = Freezer::freeze(w.pid());
    ASSERT_TRUE(frozen.ok()) << frozen.error().message();
    auto tids = w.threads();
    std::set<pid_t> ours(frozen->tids().begin(), frozen->tids().end());
    for (pid_t tid : tids) {
      EXPECT_TRUE(ours.count(tid)) << "round " << round << ": thread " << tid << " not frozen";
      EXPECT_EQ(thread_status(w.pid(), tid).first, 't') << "round " << round << ": thread " << tid;
    }
  }
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

TEST(Freezer, KillEndsTheProcess) {
  test::SelfcheckWorkload w({"-t", "3"});
  auto frozen = Freezer::freeze(w.pid());
  ASSERT_TRUE(frozen.ok()) << frozen.error().message();
  frozen->kill();
  EXPECT_TRUE(frozen->tids().empty());
  // We were its tracer and its parent: kill() reaped it already.
  EXPECT_EQ(waitpid(w.pid(), nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(w.pid())));
  w.process().release();
}

TEST(Freezer, ExitedProcessIsAnError) {
  test::ChildProcess p = test::ChildProcess::start({"/bin/true"});
  p.wait();
  auto frozen = Freezer::freeze(p.pid());
  ASSERT_FALSE(frozen.ok());
  EXPECT_EQ(frozen.error().err, ESRCH);
}

}  // namespace
}  // namespace wpckpt::ptrace
