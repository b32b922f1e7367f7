// The dump_selfcheck workload (tests/workloads/dump_selfcheck.c) as a test
// fixture: started with its stdout in a file, killed by pid at the end.
// It verifies its own registers, FPU state, memory and interrupted syscalls
// continuously and prints "TICK <n> <work done>" lines, "FAIL ..." on error.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/test_support.hpp"

namespace wpckpt::test {

class SelfcheckWorkload {
 public:
  // args: extra options, e.g. {"-t", "4", "-c"}. Waits for "READY".
  // under_agent: started as `wpckpt run -- dump_selfcheck ...` (same pid),
  // a cooperating process that pre-dump and dump accept.
  explicit SelfcheckWorkload(const std::vector<std::string>& args = {}, bool under_agent = false);

  pid_t pid() const { return proc_.pid(); }
  ChildProcess& process() { return proc_; }
  std::string output() const;
  bool failed() const;           // printed FAIL (or died)
  uint64_t ticks() const;        // TICK lines so far
  uint64_t work() const;         // the last TICK's sum of thread counters
  // Waits until `ticks` more ticks and more work were reported; false if it
  // failed or stalled for 20 s.
  bool keeps_computing(uint64_t ticks = 5) const;
  std::vector<pid_t> threads() const;  // /proc/PID/task
  // A "key=0x..." value of the READY line (usr1, brk).
  uint64_t ready_value(const std::string& key) const;

 private:
  TempDir dir_;
  std::string out_path_;
  ChildProcess proc_;
};

}  // namespace wpckpt::test
