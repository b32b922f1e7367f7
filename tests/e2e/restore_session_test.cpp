// Sessions and process groups (issue 15 item 1): a process that led its own
// session, or its own process group, leads them again after restore (same
// ids, from /proc/PID/stat); one that was in another process's group and
// session joins those of `wpckpt restore`. The held_state workload checks
// its own getsid/getpgrp on SIGUSR2 too.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <sstream>

#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

struct Ids {
  pid_t ppid = 0, pgid = 0, sid = 0;
};

Ids ids_of(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  Ids ids;
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return ids;
  std::istringstream rest(stat.substr(close + 2));
  std::string state;
  rest >> state >> ids.ppid >> ids.pgid >> ids.sid;
  return ids;
}

void restore_and_compare(const char* kind, bool shell_job = false) {
  Checkpointed c;
  checkpoint(c, {workload("held_state"), kind, c.dir.path().string()}, "READY");
  KillByPid guard{c.pid};  // if wpckpt restore is killed first, its child is orphaned, not killed
  ChildProcess restore = start_restore(c.last, c.pid, shell_job ? std::vector<std::string>{"-j"} : std::vector<std::string>{});
  ASSERT_TRUE(restored(c.pid));
  Ids got = ids_of(c.pid), restorer = ids_of(restore.pid());
  EXPECT_EQ(got.ppid, restore.pid());
  if (shell_job) {  // a job of the restoring shell: in its foreground group
    EXPECT_EQ(got.pgid, restorer.pgid);
    EXPECT_EQ(got.sid, restorer.sid);
  } else if (std::string(kind) == "session-leader") {
    EXPECT_EQ(got.sid, c.pid);
    EXPECT_EQ(got.pgid, c.pid);
  } else if (std::string(kind) == "group-leader") {
    EXPECT_EQ(got.pgid, c.pid);
    EXPECT_EQ(got.sid, restorer.sid);
  } else {
    EXPECT_EQ(got.pgid, restorer.pgid);
    EXPECT_EQ(got.sid, restorer.sid);
  }
  ASSERT_EQ(::kill(c.pid, SIGUSR2), 0);
  if (shell_job) {  // it checks that it leads its session: no longer true, on purpose
    EXPECT_TRUE(wait_until([&] { return read_file(c.out).find("BROKEN") != std::string::npos; })) << read_file(c.out);
    return;
  }
  EXPECT_TRUE(wait_until([&] { return read_file(c.out).find(std::string("INTACT ") + kind) != std::string::npos; }))
      << read_file(c.out);
  EXPECT_EQ(read_file(c.out).find("BROKEN"), std::string::npos) << read_file(c.out);
}

TEST(RestoreSession, ASessionLeaderLeadsItsSessionAgain) { restore_and_compare("session-leader"); }
TEST(RestoreSession, AGroupLeaderLeadsItsGroupAgainInTheRestorersSession) { restore_and_compare("group-leader"); }
TEST(RestoreSession, AMemberOfAnotherGroupJoinsTheRestorers) { restore_and_compare("none"); }
TEST(RestoreSession, WithShellJobASessionLeaderJoinsTheRestorersGroup) { restore_and_compare("session-leader", true); }

}  // namespace
}  // namespace wpckpt::test
