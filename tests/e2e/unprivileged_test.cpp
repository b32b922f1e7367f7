// Unprivileged use (#14 item 2), as a real non-root user created by the test:
// the user checkpoints its own process (started without `wpckpt run`:
// attached, user-mode-only userfaultfd, ptrace of its own process, no
// capability) into images it owns, and restores them the way `check` tells
// it to; `check` says what the user can and cannot do. Regressions of three
// bugs found on main as such a user: file mappings recorded as device 0,
// size 0, mtime 0 (the user cannot stat /proc/PID/map_files), so restore
// refused "file changed since the dump"; a pipe another user created failed
// the dump with a bare "Permission denied"; `check` said usable for a user
// who can restore nothing.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/e2e/privilege_helpers.hpp"
#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

namespace fs = std::filesystem;

CommandResult wpckpt_as(const TestUser& user, const std::vector<std::string>& args,
                        const std::string& binary = wpckpt_binary()) {
  std::vector<std::string> argv = user.as_user();
  argv.push_back(binary);
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, {}, std::chrono::seconds(120));
}

// zdtm_counter as `user`, started plainly (no `wpckpt run`), without this
// test's descriptors beyond 0-2 (restore reopens them as the user).
std::vector<std::string> plain_counter_as(const TestUser& user) {
  std::vector<std::string> argv = user.as_user();
  for (const std::string& a : {std::string("/bin/sh"), std::string("-c"),
                               std::string("exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- \"$@\""), std::string("sh"),
                               workload("zdtm_counter"), std::string("2"), std::string("8")})
    argv.push_back(a);
  return argv;
}

TEST(Unprivileged, CheckTellsTheUserWhatItCanDo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a user";
  TestUser user;
  if (!user.ok()) GTEST_SKIP() << "could not create a test user (useradd/groupadd)";
  CommandResult r = wpckpt_as(user, {"check", "--json"});
  EXPECT_EQ(r.exit_code, 1) << "a user who can restore nothing is not told it is usable";
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_FALSE(doc["usable"].get<bool>());
  EXPECT_TRUE(doc["features_usable"].get<bool>());
  const auto& u = doc["user"];
  EXPECT_EQ(u["uid"], user.uid());
  EXPECT_TRUE(u["can_checkpoint"].get<bool>()) << u.dump(2);
  EXPECT_FALSE(u["can_restore"].get<bool>());
  const auto& rights = u["rights"];
  EXPECT_TRUE(rights["checkpoint_own"]["can"].get<bool>());
  EXPECT_FALSE(rights["checkpoint_others"]["can"].get<bool>());
  EXPECT_TRUE(rights["route_cooperating"]["can"].get<bool>());
  EXPECT_TRUE(rights["route_attached"]["can"].get<bool>());
  EXPECT_FALSE(rights["restore_own"]["can"].get<bool>());
  const std::string around = rights["restore_own"]["way_around"];
  EXPECT_NE(around.find("sudo wpckpt restore --allow-other-owner"), std::string::npos) << around;
  EXPECT_NE(around.find("setcap cap_checkpoint_restore"), std::string::npos) << around;
  EXPECT_NE(rights["route_attached"]["needs"].get<std::string>().find("user-mode-only"), std::string::npos);
  // The text says the same.
  CommandResult text = wpckpt_as(user, {"check"});
  EXPECT_NE(text.out.find("can checkpoint your processes but cannot restore them"), std::string::npos) << text.out;
  // Root can do everything here.
  CommandResult root = run_wpckpt({"check", "--json"});
  EXPECT_EQ(root.exit_code, 0) << root.out;
  auto root_doc = nlohmann::json::parse(root.out);
  EXPECT_TRUE(root_doc["usable"].get<bool>());
  EXPECT_TRUE(root_doc["user"]["can_restore"].get<bool>());
}

TEST(Unprivileged, AUserCheckpointsItsOwnPlainProcessAndRestoresIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a user and setcap";
  TestUser user;
  if (!user.ok()) GTEST_SKIP() << "could not create a test user (useradd/groupadd)";
  TempDir bin;
  const std::string copy = setcap_copy(bin.path());
  TempDir dir;
  const fs::path home = user.own_dir(dir.path(), "home");
  const std::string out = (home / "out.txt").string();
  std::ofstream(out).close();
  ASSERT_EQ(0, ::chown(out.c_str(), user.uid(), user.gid()));
  ChildProcess proc = ChildProcess::start(plain_counter_as(user), {}, out);
  const pid_t pid = proc.pid();
  ASSERT_TRUE(wait_until([&] { return read_file(out).find("READY") != std::string::npos; })) << read_file(out);

  // Attached by the user: its own process, the unprivileged uffd route.
  CommandResult pre = wpckpt_as(user, {"pre-dump", "-t", std::to_string(pid), "-D", (home / "pre").string(), "--json"});
  ASSERT_EQ(pre.exit_code, 0) << pre.err;
  auto pj = nlohmann::json::parse(pre.out);
  EXPECT_EQ(pj["attach"]["tracking"], "new");
  EXPECT_EQ(pj["attach"]["route"], "user-mode-only");
  CommandResult dump = wpckpt_as(user, {"dump", "-t", std::to_string(pid), "-D", (home / "dump").string(),
                                        "--prev-images-dir", (home / "pre").string()});
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  proc.wait();
  ASSERT_TRUE(pid_gone(pid));
  struct stat st {};
  ASSERT_EQ(0, ::stat((home / "dump").c_str(), &st));
  EXPECT_EQ(st.st_uid, user.uid()) << "the image is the user's";
  // Every file mapping has an identity restore can check (map_files is root's).
  auto state = nlohmann::json::parse(read_file(home / "dump" / "process.json"));
  int files = 0;
  for (const auto& m : state["mappings"]) {
    if (!m.contains("file") || m["file"].is_null()) continue;
    ++files;
    EXPECT_NE(m["file"]["dev"].get<uint64_t>(), 0u) << m.dump();
    EXPECT_NE(m["file"]["mtime_ns"].get<int64_t>(), 0) << m.dump();
  }
  EXPECT_GT(files, 2);

  // The user's own restore: refused with the way around, nothing created.
  CommandResult refused = wpckpt_as(user, {"restore", "-D", (home / "dump").string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("CAP_CHECKPOINT_RESTORE"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("setcap"), std::string::npos) << refused.err;
  EXPECT_TRUE(pid_gone(pid));
  // The ways around: a setcap copy run by the user (when setcap is possible
  // here), else root with --allow-other-owner.
  std::vector<std::string> restore_argv;
  if (!copy.empty()) {
    restore_argv = user.as_user();
    restore_argv.insert(restore_argv.end(), {copy, "restore", "-D", (home / "dump").string()});
  } else {
    restore_argv = {wpckpt_binary(), "restore", "--allow-other-owner", "-D", (home / "dump").string()};
  }
  KillByPid cleanup{pid};
  ChildProcess restore = ChildProcess::start(restore_argv);
  auto complete = [&] {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
    return !ec && exe == fs::canonical(workload("zdtm_counter")) && restored(pid);
  };
  ASSERT_TRUE(wait_until(complete)) << "the user's image was not restored";
  EXPECT_EQ(status_field("/proc/" + std::to_string(pid) + "/status", "Uid"),
            std::to_string(user.uid()) + "\t" + std::to_string(user.uid()) + "\t" + std::to_string(user.uid()) +
                "\t" + std::to_string(user.uid()));
  // Still attached after restore: the user removes it, then the process checks itself.
  CommandResult untrack = wpckpt_as(user, {"untrack", "-t", std::to_string(pid)});
  EXPECT_EQ(untrack.exit_code, 0) << untrack.err;
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  EXPECT_EQ(exit_code_of(restore.wait()), 0);
  EXPECT_NE(read_file(out).find("PASS"), std::string::npos) << read_file(out);
  cleanup.pid = -1;
}

// A process of the user holding pipes root created (as a service manager or
// a test harness hands them out): the read end at fd 5 with unread bytes, a
// lone write end at fd 6. /proc refuses the user a new read end (the pipe
// inode is root's, mode 0600); the dump reads through the process's own.
TEST(Unprivileged, APipeAnotherUserCreatedIsDumped) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a user";
  TestUser user;
  if (!user.ok()) GTEST_SKIP() << "could not create a test user (useradd/groupadd)";
  TempDir dir;
  const fs::path home = user.own_dir(dir.path(), "home");
  int in[2], outp[2];
  ASSERT_EQ(0, ::pipe2(in, O_CLOEXEC));
  ASSERT_EQ(0, ::pipe2(outp, O_CLOEXEC));
  const std::string unread = "bytes nobody read yet";
  ASSERT_EQ(::write(in[1], unread.data(), unread.size()), static_cast<ssize_t>(unread.size()));
  const std::string prog = workload("zdtm_counter");
  const std::string log = (home / "out").string();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (devnull < 0 || logfd < 0 || ::dup2(devnull, 0) < 0 || ::dup2(logfd, 1) < 0 || ::dup2(devnull, 2) < 0 ||
        ::dup2(in[0], 5) < 0 || ::dup2(outp[1], 6) < 0 || ::fchown(logfd, user.uid(), user.gid()) != 0)
      _exit(120);
    ::close_range(7, ~0u, 0);
    for (int fd : {3, 4}) ::close(fd);
    gid_t groups[] = {user.gid()};
    if (::setgroups(1, groups) != 0 || ::setresgid(user.gid(), user.gid(), user.gid()) != 0 ||
        ::setresuid(user.uid(), user.uid(), user.uid()) != 0)
      _exit(121);
    ::execl(prog.c_str(), prog.c_str(), "1", "4", static_cast<char*>(nullptr));
    _exit(127);
  }
  struct KillAndReap {
    pid_t pid;
    ~KillAndReap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } guard{pid};
  ASSERT_TRUE(wait_until([&] { return read_file(log).find("READY") != std::string::npos; })) << read_file(log);
  // What the bug was: the user cannot reopen the pipe through /proc.
  CommandResult opened = run_command({"/usr/bin/setpriv", "--reuid=" + std::to_string(user.uid()),
                                      "--regid=" + std::to_string(user.gid()), "--init-groups", "--",
                                      "/bin/sh", "-c", "exec 9</proc/" + std::to_string(pid) + "/fd/5"});
  EXPECT_NE(opened.exit_code, 0) << "the user could reopen root's pipe: this test proves nothing here";

  CommandResult dump = wpckpt_as(user, {"dump", "-t", std::to_string(pid), "-D", (home / "dump").string(),
                                        "--leave-running"});
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  auto state = nlohmann::json::parse(read_file(home / "dump" / "process.json"));
  std::string hex;
  for (unsigned char c : unread) {
    static const char* digits = "0123456789abcdef";
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  bool found = false;
  for (const auto& f : state["fds"]) {
    if (f["fd"] != 5) continue;
    found = true;
    EXPECT_EQ(f["details"]["data"], hex) << f.dump();
  }
  EXPECT_TRUE(found) << state["fds"].dump();
  // Not consumed: the bytes are still in the pipe.
  char buf[64] = {};
  ASSERT_EQ(0, ::fcntl(in[0], F_SETFL, O_NONBLOCK));
  EXPECT_EQ(::read(in[0], buf, sizeof buf), static_cast<ssize_t>(unread.size()));
  for (int fd : {in[0], in[1], outp[0], outp[1]}) ::close(fd);
}

}  // namespace
}  // namespace wpckpt::test
