// What a dump cannot save is refused, named, and nothing is harmed: for each
// kind of state (lib/dump/unsupported_state.hpp) a held_state workload holds
// it under `wpckpt run`; pre-dump and dump (text and --json) must exit
// non-zero naming it, leave no image directory, and leave the process
// running, untraced, with the state intact (it checks itself on SIGUSR2).
// Every process is stopped by pid when a test ends, pass or fail.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/e2e/dump_helpers.hpp"
#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

// held_state KIND under `wpckpt run`, its stdout in a file.
class HeldState {
 public:
  explicit HeldState(const std::string& kind, const std::string& program = workload("held_state")) : kind_(kind) {
    out_ = (dir_ / "out.txt").string();
    proc_ = ChildProcess::start({wpckpt_binary(), "run", "--", program, kind, dir_.path().string()}, {}, out_);
    wait_until([&] {
      std::string o = output();
      return o.find("READY") != std::string::npos || o.find("SETUP-FAILED") != std::string::npos || !proc_.running();
    });
    std::string o = output();
    size_t at = o.find(" child=");
    if (at != std::string::npos) child_.pid = std::atoi(o.c_str() + at + 7);
  }
  bool ready() const { return output().find("READY") != std::string::npos; }
  std::string output() const { return read_file(out_); }
  pid_t pid() const { return proc_.pid(); }
  pid_t child() const { return child_.pid; }
  const std::filesystem::path& dir() const { return dir_.path(); }

  // Running, no thread stopped or traced, and its child (if any) alive.
  ::testing::AssertionResult running_untraced() const {
    std::string task = "/proc/" + std::to_string(pid()) + "/task";
    if (!std::filesystem::exists(task)) return ::testing::AssertionFailure() << "the process is gone";
    for (const auto& e : std::filesystem::directory_iterator(task)) {
      std::string s = read_file(e.path() / "status");
      if (s.find("TracerPid:\t0\n") == std::string::npos)
        return ::testing::AssertionFailure() << "thread " << e.path().filename() << " is traced";
      if (s.find("State:\tt") != std::string::npos || s.find("State:\tT") != std::string::npos)
        return ::testing::AssertionFailure() << "thread " << e.path().filename() << " is stopped";
    }
    if (child() > 0 && pid_gone(child())) return ::testing::AssertionFailure() << "child " << child() << " is gone";
    return ::testing::AssertionSuccess();
  }

  // SIGUSR2: the workload checks its state and answers INTACT or BROKEN.
  ::testing::AssertionResult intact() {
    size_t before = count("INTACT ");
    if (::kill(pid(), SIGUSR2) != 0) return ::testing::AssertionFailure() << "kill: " << std::strerror(errno);
    bool answered = wait_until([&] { return count("INTACT ") > before || output().find("BROKEN") != std::string::npos; });
    if (answered && output().find("BROKEN") == std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << output().substr(output().size() > 2000 ? output().size() - 2000 : 0);
  }

 private:
  size_t count(const std::string& what) const {
    size_t n = 0;
    std::string o = output();
    for (size_t at = o.find(what); at != std::string::npos; at = o.find(what, at + 1)) ++n;
    return n;
  }
  std::string kind_;
  TempDir dir_;
  std::string out_;
  ChildProcess proc_;
  KillByPid child_;  // declared after proc_: killed before its parent is
};

// A refused verb: non-zero, "wpckpt: error:" naming `reason`, no image directory.
void expect_refused(const std::vector<std::string>& args, const std::filesystem::path& images,
                    const std::string& reason) {
  CommandResult r = run_wpckpt(args);
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("wpckpt: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(reason), std::string::npos) << "expected '" << reason << "' in: " << r.err;
  EXPECT_NE(r.err.find("Operation not supported"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("wpckpt: hint:"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(images)) << images;
  std::vector<std::string> json = args;
  json.push_back("--json");
  CommandResult j = run_wpckpt(json);
  EXPECT_NE(j.exit_code, 0);
  auto doc = json_of(j);
  EXPECT_EQ(doc.value("ok", true), false) << j.out;
  EXPECT_NE(j.out.find(reason), std::string::npos) << j.out;
  EXPECT_FALSE(std::filesystem::exists(images)) << images;
}

struct Refusal {
  const char* kind;
  const char* reason;      // in the error of both verbs
  bool pre_dump_sees = true;  // false: only a frozen dump can see it
};

void PrintTo(const Refusal& r, std::ostream* os) { *os << r.kind; }

class DumpRefuses : public ::testing::TestWithParam<Refusal> {};

TEST_P(DumpRefuses, NamingItAndLeavingTheProcessAsItWas) {
  const Refusal& p = GetParam();
  HeldState w(p.kind);
  if (!w.ready()) {
    std::string o = w.output();
    if (o.find("SETUP-FAILED") != std::string::npos) GTEST_SKIP() << "this machine does not allow it: " << o;
    FAIL() << "held_state " << p.kind << " did not start: " << o;
  }
  std::string reason = p.reason;
  ASSERT_TRUE(w.intact());
  TempDir images;
  std::vector<std::string> pre = {"pre-dump", "-t", std::to_string(w.pid()), "-D", (images / "pre").string()};
  std::filesystem::path parent;
  if (p.pre_dump_sees) {
    expect_refused(pre, images / "pre", reason);
  } else {
    CommandResult r = run_wpckpt(pre);  // unseen while it runs: the dump sees it frozen
    ASSERT_EQ(r.exit_code, 0) << r.err;
    parent = images / "pre";
  }
  EXPECT_TRUE(w.running_untraced());
  for (bool leave_running : {false, true}) {
    std::vector<std::string> dump = {"dump", "-t", std::to_string(w.pid()), "-D", (images / "d").string()};
    if (!parent.empty()) dump.insert(dump.end(), {"--prev-images-dir", parent.string()});
    if (leave_running) dump.push_back("--leave-running");
    expect_refused(dump, images / "d", reason);
    EXPECT_TRUE(w.running_untraced());
  }
  EXPECT_TRUE(w.intact());
  if (!parent.empty()) {
    EXPECT_EQ(run_wpckpt({"verify", "-D", parent.string()}).exit_code, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, DumpRefuses,
    ::testing::Values(Refusal{"deleted-fd", "held-deleted (deleted)"},
                      Refusal{"deleted-cwd", "working directory"},
                      Refusal{"flock", "FLOCK WRITE lock"}, Refusal{"posix-lock", "POSIX WRITE lock"},
                      Refusal{"seccomp", "seccomp"}, Refusal{"uts-ns", "other namespaces than wpckpt: uts"},
                      Refusal{"aio", "asynchronous I/O context"}),
    [](const ::testing::TestParamInfo<Refusal>& info) {
      std::string name = info.param.kind;
      for (char& c : name)
        if (c == '-') c = '_';
      return name;
    });

TEST(DumpRefuses, DeletedExecutable) {
  TempDir bin;
  std::filesystem::path copy = bin / "held_state_copy";
  std::filesystem::copy_file(workload("held_state"), copy);
  HeldState w("none", copy.string());
  ASSERT_TRUE(w.ready()) << w.output();
  std::filesystem::remove(copy);
  TempDir images;
  expect_refused({"dump", "-t", std::to_string(w.pid()), "-D", (images / "d").string()}, images / "d",
                 "the executable of process " + std::to_string(w.pid()) + " was deleted");
  EXPECT_TRUE(w.running_untraced());
  EXPECT_TRUE(w.intact());
}

// Not refused: the bytes of a deleted file's mappings are in the image and
// come back as anonymous memory (private and shared).
TEST(DumpRefuses, NotADeletedFileMappingWhichIsRestored) {
  Checkpointed c;
  checkpoint(c, {workload("held_state"), "deleted-map", c.dir.path().string()}, "READY");
  KillByPid guard{c.pid};  // if wpckpt restore is killed first, its child is orphaned, not killed
  ChildProcess restore = start_restore(c.last, c.pid);
  ASSERT_TRUE(restored(c.pid));
  ASSERT_EQ(::kill(c.pid, SIGUSR2), 0);
  EXPECT_TRUE(wait_until([&] { return read_file(c.out).find("INTACT deleted-map") != std::string::npos; }))
      << read_file(c.out);
  EXPECT_EQ(read_file(c.out).find("BROKEN"), std::string::npos) << read_file(c.out);
}

// No longer refused (issue 15 items 2 and 4): a POSIX timer and an armed
// interval timer (an hour each) are restored with the time they had left; a
// removed SysV segment comes back with its id, size and contents, attached.
class NotRefusedButRestored : public ::testing::TestWithParam<const char*> {};

TEST_P(NotRefusedButRestored, ComesBackAsItWas) {
  Checkpointed c;
  checkpoint(c, {workload("held_state"), GetParam(), c.dir.path().string()}, "READY");
  KillByPid guard{c.pid};
  ChildProcess restore = start_restore(c.last, c.pid);
  ASSERT_TRUE(restored(c.pid));
  ASSERT_EQ(::kill(c.pid, SIGUSR2), 0);
  EXPECT_TRUE(wait_until([&] { return read_file(c.out).find(std::string("INTACT ") + GetParam()) != std::string::npos; }))
      << read_file(c.out);
  EXPECT_EQ(read_file(c.out).find("BROKEN"), std::string::npos) << read_file(c.out);
}

INSTANTIATE_TEST_SUITE_P(Kinds, NotRefusedButRestored, ::testing::Values("posix-timer", "itimer", "sysv-shm"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

// No longer refused (issue 15 item 2): a child, a child forked by another
// thread, a zombie not yet waited for. The pre-dump and the dump write a
// tree's image; the restore brings back both processes with their pids, the
// child still the workload's (waitpid finds it; the zombie's status is 7).
class TreeRestored : public ::testing::TestWithParam<const char*> {};

TEST_P(TreeRestored, ChildComesBackAsTheWorkloadsChild) {
  Checkpointed c;
  checkpoint(c, {workload("held_state"), GetParam(), c.dir.path().string()}, "READY");
  std::string out = read_file(c.out);
  auto at = out.find("child=");
  ASSERT_NE(at, std::string::npos) << out;
  pid_t child = std::stoi(out.substr(at + 6));
  ASSERT_GT(child, 0) << out;
  EXPECT_TRUE(std::filesystem::exists(c.last / "tree.json"));
  KillByPid guard{c.pid};
  KillByPid child_guard{child};  // a zombie is gone with its parent
  ChildProcess restore = start_restore(c.last, c.pid);
  ASSERT_TRUE(restored(c.pid));
  std::string status = read_file("/proc/" + std::to_string(child) + "/status");
  EXPECT_NE(status.find("PPid:\t" + std::to_string(c.pid) + "\n"), std::string::npos) << status;
  ASSERT_EQ(::kill(c.pid, SIGUSR2), 0);
  EXPECT_TRUE(wait_until([&] { return read_file(c.out).find(std::string("INTACT ") + GetParam()) != std::string::npos; }))
      << read_file(c.out);
  EXPECT_EQ(read_file(c.out).find("BROKEN"), std::string::npos) << read_file(c.out);
}

INSTANTIATE_TEST_SUITE_P(Trees, TreeRestored, ::testing::Values("child", "thread-child", "zombie"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

// A restored program that fails at once: `wpckpt restore` ends with its
// status and says that it is the restored process's, not its own.
TEST(DumpRefuses, RestoreSaysWhyItExitsWithTheProgramsStatus) {
  Checkpointed c;
  checkpoint(c, {workload("held_state"), "none", c.dir.path().string()}, "READY");
  KillByPid guard{c.pid};
  TempDir logs;
  ChildProcess restore = ChildProcess::start({wpckpt_binary(), "restore", "-D", c.last.string()}, {},
                                             (logs / "out.txt").string(), (logs / "err.txt").string());
  ASSERT_TRUE(wait_until([&] { return restored(c.pid); })) << read_file(logs / "err.txt");
  ASSERT_EQ(::kill(c.pid, SIGUSR1), 0);  // held_state exits with status 3
  EXPECT_EQ(exit_code_of(restore.wait()), 3);
  std::string err = read_file(logs / "err.txt");
  EXPECT_NE(err.find("the restored process " + std::to_string(c.pid) + " exited with status 3"), std::string::npos)
      << err;
}

}  // namespace
}  // namespace wpckpt::test
