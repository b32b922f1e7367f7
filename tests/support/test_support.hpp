// Helpers shared by the tests: processes that are always stopped (by pid) when
// a test ends, pass or fail; temporary directories that are always removed;
// running the wpckpt binary and capturing what it prints.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace wpckpt::test {

// A child process started with fork+exec. The destructor SIGKILLs and reaps
// it (and SIGCONTs it first, in case a test left it stopped or traced).
class ChildProcess {
 public:
  // argv[0] is the program path. extra_env entries are "KEY=VALUE".
  // stdout_path/stderr_path: "" keeps the test's own, otherwise a file.
  static ChildProcess start(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {},
                            const std::string& stdout_path = "", const std::string& stderr_path = "",
                            const std::string& stdin_path = "");
  ChildProcess() = default;
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !reaped_; }
  // Waits for exit; returns the wait status, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void kill_now();
  // Forget the pid without killing it (e.g. the process was restored by wpckpt and is reaped elsewhere).
  void release() { pid_ = -1; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// A fresh directory under $TMPDIR (or /tmp), removed recursively at the end.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  std::string out, err;
};

// Runs a program to completion, capturing stdout and stderr.
CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(300));
// Runs the wpckpt binary under test with these arguments.
CommandResult run_wpckpt(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {});

std::string wpckpt_binary();
std::string workload(const std::string& name);  // path of tests/workloads/<name>
std::string source_dir();
std::string read_file(const std::filesystem::path& path);
// Polls until pred() or timeout; returns pred()'s last value.
template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    struct timespec ts {0, 10'000'000};
    nanosleep(&ts, nullptr);
  }
  return pred();
}

// A few seconds of Python with a deterministic output (a real Debian
// program for the end-to-end tests).
inline const std::vector<std::string> kPythonComputation = {"/usr/bin/python3", "-c",
                                                            "import hashlib\n"
                                                            "h = hashlib.sha256(); d = {}\n"
                                                            "for i in range(6_000_000):\n"
                                                            "    d[i % 100003] = d.get(i % 100003, 0) + i\n"
                                                            "    h.update(str(i * i).encode())\n"
                                                            "print(h.hexdigest(), sum(d.values()), len(d))\n"};

}  // namespace wpckpt::test
