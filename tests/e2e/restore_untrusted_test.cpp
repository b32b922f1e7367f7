// Restore of images whose files changed after the dump or whose owner is
// someone else, and restores that are killed: a restore never hangs, never
// opens what the image's owner could not, never continues on another file,
// and leaves no process behind when it fails or is killed (issue 10, items
// 3, 6 and 7).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

// Gone, or a zombie (then reaped when it is ours: this test is a subreaper).
bool dead(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z') return false;
  ::waitpid(pid, nullptr, WNOHANG);
  return true;
}

// `wpckpt restore` of an image that must fail: bounded, exit 1, nothing left.
CommandResult restore_must_fail(const Checkpointed& c, const std::vector<std::string>& extra = {}) {
  TempDir logs;
  std::vector<std::string> argv = {wpckpt_binary(), "restore", "-D", c.last.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  KillByPid guard{c.pid};
  ChildProcess restore = ChildProcess::start(argv, {}, logs / "out", logs / "err");
  int status = restore.wait(std::chrono::seconds(60));
  CommandResult r;
  r.exit_code = exit_code_of(status);
  r.err = read_file(logs / "err");
  EXPECT_NE(status, -1) << "restore did not finish: " << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(wait_until([&] { return dead(c.pid); })) << "a process was left with pid " << c.pid;
  return r;
}

TEST(RestoreUntrusted, AFileThatBecameAFifoFailsAtOnceAndLeavesNothing) {
  Checkpointed c;
  std::string data = c.dir / "data";
  checkpoint(c, {workload("zdtm_files"), data}, "READY");
  // data.log is open write-only: opening a FIFO that way waits for a reader forever.
  std::string log = data + ".log";
  ASSERT_EQ(::unlink(log.c_str()), 0);
  ASSERT_EQ(::mkfifo(log.c_str(), 0600), 0);
  CommandResult r = restore_must_fail(c);
  EXPECT_NE(r.err.find(log + " is now a FIFO, it was a regular file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("fd "), std::string::npos) << r.err;
}

TEST(RestoreUntrusted, AFileReplacedAfterTheDumpIsRefusedNamingTheFd) {
  Checkpointed c;
  std::string data = c.dir / "data";
  checkpoint(c, {workload("zdtm_files"), data}, "READY");
  std::string log = data + ".log", fresh = data + ".new";
  { std::ofstream(fresh) << "before dump\n"; }  // same bytes, another file
  ASSERT_EQ(::rename(fresh.c_str(), log.c_str()), 0);
  CommandResult r = restore_must_fail(c);
  EXPECT_NE(r.err.find(log + " is not the file it had at the dump"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("error: fd "), std::string::npos) << r.err;
}

TEST(RestoreUntrusted, FilesTheImageOwnerCannotOpenForWritingAreNotOpened) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (the image is given to another user)";
  Checkpointed c;
  std::string data = c.dir / "data";
  checkpoint(c, {workload("zdtm_files"), data}, "READY");
  // The directory and the workload's output are open to everyone; data
  // (mapped shared and writable, open O_RDWR) stays root's, mode 0600.
  ASSERT_EQ(::chmod(c.dir.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(c.out.c_str(), 0666), 0);
  std::string before = read_file(data);
  const uid_t nobody = 65534;
  for (const auto& e : std::filesystem::recursive_directory_iterator(c.dir.path())) {
    const std::string p = e.path().string();
    bool image = p.rfind(c.dir.path().string() + "/pre", 0) == 0 || p.rfind(c.last.string(), 0) == 0;
    if (image) {
      ASSERT_EQ(::lchown(p.c_str(), nobody, nobody), 0) << p;
    }
  }
  ASSERT_EQ(::chown(c.last.c_str(), nobody, nobody), 0);
  CommandResult r = restore_must_fail(c, {"--allow-other-owner"});
  // Refused before anything is written: the recorded credentials (root's)
  // are more than nobody could have had, and, were they not, the first
  // root-only file (data, or a log the test runner let the workload
  // inherit) would be refused when opened as nobody.
  bool refused = r.err.find("restore refuses what its owner could not do") != std::string::npos ||
                 r.err.find("could not have run a process with these credentials") != std::string::npos ||
                 r.err.find("Permission denied") != std::string::npos;
  EXPECT_TRUE(refused) << r.err;
  EXPECT_EQ(read_file(data), before);
}

// wpckpt restore SIGKILLed as soon as `at` says so: the half-built process dies too.
template <typename At>
void kill_restore_when(const std::vector<std::string>& extra, At at) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);  // orphans come to us, and we reap them
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "2", "64"}, "READY");
  KillByPid guard{c.pid};
  std::vector<std::string> argv = {wpckpt_binary(), "restore", "-D", c.last.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ChildProcess restore = ChildProcess::start(argv);
  ASSERT_TRUE(wait_until([&] { return at(c.pid); }, std::chrono::seconds(60)));
  restore.kill_now();
  EXPECT_TRUE(wait_until([&] { return dead(c.pid); })) << "pid " << c.pid << " outlived the killed restore";
}

bool exists(pid_t pid) { return std::filesystem::exists("/proc/" + std::to_string(pid)); }
bool traced(pid_t pid) {
  std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  return !status.empty() && status.find("TracerPid:\t0\n") == std::string::npos;
}

TEST(RestoreKilled, AsSoonAsTheProcessExists) { kill_restore_when({}, exists); }
TEST(RestoreKilled, AsSoonAsTheProcessExistsDetached) { kill_restore_when({"-d"}, exists); }
TEST(RestoreKilled, WhileItIsBeingRebuilt) { kill_restore_when({}, traced); }
TEST(RestoreKilled, WhileItIsBeingRebuiltDetached) { kill_restore_when({"-d"}, traced); }

// Once restored, the process is no longer tied to wpckpt's life (the
// parent-death signal that guarded the rebuild is cleared).
TEST(RestoreKilled, AfterTheRestoreTheProcessOutlivesWpckpt) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "1", "8"}, "READY");
  KillByPid guard{c.pid};
  ChildProcess restore = start_restore(c.last, c.pid);
  restore.kill_now();
  ASSERT_FALSE(wait_until([&] { return dead(c.pid); }, std::chrono::milliseconds(500)));
  ASSERT_EQ(::kill(c.pid, SIGUSR1), 0);
  EXPECT_TRUE(wait_until([&] { return read_file(c.out).find("PASS") != std::string::npos; })) << read_file(c.out);
  EXPECT_TRUE(wait_until([&] { return dead(c.pid); }));
}

}  // namespace
}  // namespace wpckpt::test
