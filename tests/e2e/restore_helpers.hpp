// Helpers of the restore end-to-end tests: a workload started under
// `wpckpt run` with its stdout in a file, a chain of pre-dumps and a dump,
// and `wpckpt restore` started as a child (the restored process is its child).
// Every process is stopped by pid when the test ends.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/test_support.hpp"

namespace wpckpt::test {

inline bool pid_gone(pid_t pid) { return !std::filesystem::exists("/proc/" + std::to_string(pid)); }

// Kills a process that is not our child (a detached restore) when the test ends.
struct KillByPid {
  pid_t pid = -1;
  ~KillByPid() {
    if (pid > 0) ::kill(pid, SIGKILL);
  }
};

struct Checkpointed {
  TempDir dir;
  std::string out;  // the workload's stdout
  pid_t pid = -1;
  std::filesystem::path last;  // the dump
  std::vector<std::string> dump_flags;  // extra options of the dump (e.g. --tcp-established)
  std::vector<std::string> pre_dump_flags;  // extra options of each pre-dump
};

// Starts argv under `wpckpt run`, waits until its stdout contains `ready`,
// takes `pre_dumps` pre-dumps (calling `between` after each) and a dump.
template <typename Between>
void checkpoint(Checkpointed& c, const std::vector<std::string>& argv, const std::string& ready, int pre_dumps,
                Between between) {
  c.out = (c.dir / "out.txt").string();
  std::vector<std::string> full = {wpckpt_binary(), "run", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  ChildProcess proc = ChildProcess::start(full, {}, c.out);
  c.pid = proc.pid();
  ASSERT_TRUE(wait_until([&] { return read_file(c.out).find(ready) != std::string::npos; })) << read_file(c.out);
  std::filesystem::path parent;
  for (int i = 0; i < pre_dumps; ++i) {
    std::filesystem::path img = c.dir / ("pre" + std::to_string(i));
    std::vector<std::string> args = {"pre-dump", "-t", std::to_string(c.pid), "-D", img.string()};
    if (!parent.empty()) args.insert(args.end(), {"--prev-images-dir", parent.string()});
    args.insert(args.end(), c.pre_dump_flags.begin(), c.pre_dump_flags.end());
    CommandResult r = run_wpckpt(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    parent = img;
    between();
  }
  c.last = c.dir / "dump";
  std::vector<std::string> args = {"dump", "-t", std::to_string(c.pid), "-D", c.last.string()};
  if (!parent.empty()) args.insert(args.end(), {"--prev-images-dir", parent.string()});
  args.insert(args.end(), c.dump_flags.begin(), c.dump_flags.end());
  CommandResult r = run_wpckpt(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  proc.wait();  // killed by the dump; reaped so that its pid is free
  ASSERT_TRUE(pid_gone(c.pid));
}

inline void checkpoint(Checkpointed& c, const std::vector<std::string>& argv, const std::string& ready,
                       int pre_dumps = 1) {
  checkpoint(c, argv, ready, pre_dumps, [] {});
}

// True once the restore of `pid` is complete: its executable is the restored
// one (not wpckpt, whose fork it starts as) and wpckpt no longer traces it.
inline bool restored(pid_t pid) {
  std::string base = "/proc/" + std::to_string(pid);
  std::error_code ec;
  auto exe = std::filesystem::read_symlink(base + "/exe", ec);
  if (ec || exe == std::filesystem::canonical(wpckpt_binary())) return false;
  return read_file(base + "/status").find("TracerPid:\t0\n") != std::string::npos;
}

// `wpckpt restore -D img` as our child; waits until the restore is complete.
inline ChildProcess start_restore(const std::filesystem::path& img, pid_t pid,
                                  const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {wpckpt_binary(), "restore", "-D", img.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ChildProcess r = ChildProcess::start(argv);
  EXPECT_TRUE(wait_until([&] { return restored(pid); })) << "the restored process did not appear";
  return r;
}

inline int exit_code_of(int status) {
  if (status < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace wpckpt::test
