// The restore engine against real processes captured by the test-only
// mini_dump: same pid and tids, memory, threads, handlers, the file offset of
// stdout; the workload checks itself and prints PASS.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cctype>
#include <iostream>
#include <sstream>
#include <string>

#include "lib/restore/restore.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/restore/mini_dump.hpp"

namespace wpckpt::restore {
namespace {

// kB of private copies (smaps "Anonymous") in the code mappings of libc.
uint64_t anonymous_kib_in_libc_code(pid_t pid) {
  std::istringstream smaps(test::read_file("/proc/" + std::to_string(pid) + "/smaps"));
  std::string line;
  bool in_code = false;
  uint64_t kib = 0, mappings = 0;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
      in_code = line.find(" r-xp ") != std::string::npos && line.find("/libc.so") != std::string::npos;
      mappings += in_code;
    } else if (in_code && line.rfind("Anonymous:", 0) == 0) {
      kib += std::stoull(line.substr(10));
    }
  }
  EXPECT_EQ(mappings, 1u) << "libc's code mapping not found";
  return kib;
}

void restore_counter(int threads, int heap_mib) {
  test::TempDir dir;
  std::string out = dir / "out.txt";
  auto proc = test::ChildProcess::start({test::workload("zdtm_counter"), std::to_string(threads),
                                         std::to_string(heap_mib)},
                                        {}, out);
  ASSERT_TRUE(test::wait_until([&] { return test::read_file(out).find("READY") != std::string::npos; }));
  pid_t pid = proc.pid();
  auto dumped = test::mini_dump(pid, dir / "img");
  ASSERT_TRUE(dumped.ok()) << dumped.error().message();
  proc.release();  // killed and reaped by mini_dump

  RestoreOptions options;
  auto r = restore_process(dir / "img", options);
  ASSERT_TRUE(r.ok()) << r.error().message() << " / " << r.error().hint;
  EXPECT_EQ(r->pid, pid);
  EXPECT_EQ(r->threads, static_cast<size_t>(threads + 1));
  EXPECT_GT(r->pages_stored, static_cast<uint64_t>(heap_mib) * 256);
  // The heap is fresh anonymous memory: placed with UFFDIO_COPY, unless any
  // anonymous fault may get a huge page (uffd_fill.hpp).
  // libc's code was stored with the rest and is what the file holds: the
  // restore leaves it to the file (shared), no private copy of it.
  EXPECT_GT(r->pages_kept, 0u);
  EXPECT_EQ(anonymous_kib_in_libc_code(pid), 0u);
  if (test::read_file("/sys/kernel/mm/transparent_hugepage/enabled").find("[always]") == std::string::npos)
    EXPECT_GT(r->pages_copied, static_cast<uint64_t>(heap_mib) * 256);
  else
    EXPECT_EQ(r->pages_copied, 0u);
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  int status = 0;
  bool exited = test::wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; });
  if (!exited) {
    std::string p = "/proc/" + std::to_string(pid);
    std::cerr << test::read_file(p + "/stat") << "\n" << test::read_file(p + "/syscall") << "\n"
              << test::read_file(p + "/maps") << test::read_file(p + "/status");
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  ASSERT_TRUE(exited) << test::read_file(out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << ": " << test::read_file(out);
  std::string text = test::read_file(out);
  EXPECT_EQ(text.rfind("READY", 0), 0u) << text;  // stdout continued at its offset: READY kept, PASS after it
  EXPECT_NE(text.find("PASS"), std::string::npos) << text;
}

TEST(RestoreEngine, SingleThreaded) { restore_counter(0, 4); }
TEST(RestoreEngine, MultiThreadedWithMutexAndCondvar) { restore_counter(3, 32); }

}  // namespace
}  // namespace wpckpt::restore
