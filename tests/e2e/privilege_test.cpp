// Nothing a user can put in wpckpt's environment or hand it as a pid gives
// that user more than they had (#10 item 1): a copy of wpckpt with file
// capabilities, run by a real non-root user created for the test, ignores
// fault points and refuses another user's process before stopping it.
#include <gtest/gtest.h>

#include "tests/e2e/predump_helpers.hpp"
#include "tests/e2e/privilege_helpers.hpp"
#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

#define REQUIRE_TEST_USER(user)                                                      \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a user and setcap";    \
  if (!(user).ok()) GTEST_SKIP() << "could not create a test user (useradd/groupadd)"

TEST(Privilege, ASetcapCopyRefusesAnotherUsersProcessAndIgnoresFaultPoints) {
  TestUser user;
  REQUIRE_TEST_USER(user);
  TempDir bin;
  const std::string copy = setcap_copy(bin.path());
  if (copy.empty()) GTEST_SKIP() << "setcap is not possible here (no libcap2-bin or no xattrs)";
  Workload root_target;  // root's process, with an agent
  start_workload(root_target, {"--mib", "1"});
  if (HasFatalFailure()) return;
  TempDir images;
  const auto dir = user.own_dir(images.path(), "u");
  const std::string pid = std::to_string(root_target.pid());
  for (const char* verb : {"dump", "pre-dump"}) {
    std::vector<std::string> argv = user.as_user();
    for (const std::string& a : {std::string("/usr/bin/env"), std::string("WPCKPT_FAULT_POINT=frozen"), copy,
                                 std::string(verb), std::string("-t"), pid, std::string("-D"), (dir / verb).string()})
      argv.push_back(a);
    auto r = run_command(argv, {}, std::chrono::seconds(60));
    EXPECT_NE(r.exit_code, -1) << verb << ": hung (the process was left stopped?)";
    EXPECT_NE(r.exit_code, 0) << verb << ": a user checkpointed root's process";
    EXPECT_NE(r.err.find("does not belong to the user who runs wpckpt"), std::string::npos) << verb << ": " << r.err;
    EXPECT_EQ(r.err.find("fault point"), std::string::npos) << verb << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / verb));
    EXPECT_TRUE(running_untraced(root_target.pid())) << verb;
  }
  // The plain binary is refused the same way (the kernel would refuse too).
  std::vector<std::string> argv = user.as_user();
  for (const std::string& a : {wpckpt_binary(), std::string("dump"), std::string("-t"), pid, std::string("-D"),
                               (dir / "plain").string()})
    argv.push_back(a);
  auto plain = run_command(argv, {}, std::chrono::seconds(60));
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_NE(plain.err.find("does not belong to the user who runs wpckpt"), std::string::npos) << plain.err;
  EXPECT_TRUE(running_untraced(root_target.pid()));
}

TEST(Privilege, AFaultPointIsIgnoredWhenTheUserDumpsItsOwnProcessWithASetcapCopy) {
  TestUser user;
  REQUIRE_TEST_USER(user);
  TempDir bin;
  const std::string copy = setcap_copy(bin.path());
  if (copy.empty()) GTEST_SKIP() << "setcap is not possible here (no libcap2-bin or no xattrs)";
  Workload own;
  start_workload(own, {"--mib", "1"}, user.as_user());
  if (HasFatalFailure()) return;
  TempDir images;
  const auto dir = user.own_dir(images.path(), "u");
  std::vector<std::string> argv = user.as_user();
  for (const std::string& a : {std::string("/usr/bin/env"), std::string("WPCKPT_FAULT_POINT=frozen"), copy,
                               std::string("dump"), std::string("-t"), std::to_string(own.pid()), std::string("-D"),
                               (dir / "d").string(), std::string("--leave-running")})
    argv.push_back(a);
  auto r = run_command(argv, {}, std::chrono::seconds(120));
  // Whether an unprivileged dump completes is not the point: it must not stop at the hook.
  EXPECT_NE(r.exit_code, -1) << "the dump stopped at the fault point: " << r.err;
  EXPECT_EQ(r.err.find("fault point"), std::string::npos) << r.err;
  EXPECT_TRUE(wait_until([&] { return running_untraced(own.pid()); }));
}

// A process without an agent is attached by the dump (tests/e2e/attach_test.cpp);
// a dump interrupted while the process is frozen leaves it running and
// untraced, with no image, and untrack then removes what was attached.
TEST(Privilege, ADumpOfAProcessWithoutAgentInterruptedWhileFrozenLeavesItRunning) {
  if (::geteuid() != 0) GTEST_SKIP() << "runs as root like the users of dump";
  ChildProcess plain = ChildProcess::start({"/bin/sleep", "600"});
  TempDir images;
  const std::string err = (images / "err").string();
  ChildProcess dump = ChildProcess::start(
      {wpckpt_binary(), "dump", "-t", std::to_string(plain.pid()), "-D", (images / "d").string()},
      {"WPCKPT_FAULT_POINT=frozen"}, "", err);
  ASSERT_TRUE(wait_until([&] { return read_file(err).find("fault point frozen") != std::string::npos; }))
      << read_file(err);
  ASSERT_EQ(::kill(dump.pid(), SIGINT), 0);
  EXPECT_NE(exit_code_of(dump.wait()), 0);
  EXPECT_FALSE(std::filesystem::exists(images / "d"));
  EXPECT_TRUE(wait_until([&] { return running_untraced(plain.pid()); }));
  auto r = run_wpckpt({"untrack", "-t", std::to_string(plain.pid())});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(running_untraced(plain.pid()));
}

}  // namespace
}  // namespace wpckpt::test
