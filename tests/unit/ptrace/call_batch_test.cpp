// Queued injected calls into a real frozen workload: more calls than one
// batch holds all run, in order, with few round trips; the first failing
// call is named; the workload runs on unharmed.
#include "lib/ptrace/call_batch.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <string>

#include "lib/ptrace/freezer.hpp"
#include "tests/support/selfcheck_workload.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::ptrace {
namespace {

// How many of the `pages` pages at `base` are mapped as the test maps them:
// alternately writable and read-only (the first or last may merge with a
// neighbour of the same protection, so pages are counted, not areas).
size_t pages_mapped_at(pid_t pid, uint64_t base, uint64_t pages) {
  auto maps = tracker::read_maps(pid);
  EXPECT_TRUE(maps.ok());
  size_t found = 0;
  for (uint64_t i = 0; i < pages; ++i) {
    const uint64_t at = base + i * 4096;
    for (const auto& v : *maps) {
      if (v.start <= at && at < v.end && v.read && v.write == (i % 2 == 0)) ++found;
    }
  }
  return found;
}

TEST(CallBatch, RunsMoreCallsThanOneBatchHoldsInOrder) {
  test::SelfcheckWorkload w({"-t", "1"});
  auto frozen = Freezer::freeze(w.pid());
  ASSERT_TRUE(frozen.ok()) << frozen.error().message();
  const uint64_t pages = 3 * Injector::kBatchMaxCalls / 2 + 7;
  {
    auto inj = Injector::prepare(w.pid());
    ASSERT_TRUE(inj.ok()) << inj.error().message();
    // A free place for them: the kernel picks it, then it is given back.
    auto place = (*inj)->syscall(SYS_mmap, 0, pages * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                                 static_cast<uint64_t>(-1), 0);
    ASSERT_TRUE(place.ok() && *place > 0);
    const uint64_t base = static_cast<uint64_t>(*place);
    CallBatch calls(**inj);
    for (uint64_t i = 0; i < pages; ++i) {
      uint64_t at = base + i * 4096;
      uint64_t prot = i % 2 == 0 ? PROT_READ | PROT_WRITE : PROT_READ;
      ASSERT_TRUE(calls.add("mmap", "page " + std::to_string(i), SYS_mmap,
                            {at, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, static_cast<uint64_t>(-1), 0},
                            static_cast<long>(at))
                      .ok());
    }
    // Queued, not run: nothing of the last partial batch is there yet.
    EXPECT_LT(pages_mapped_at(w.pid(), base, pages), pages);
    ASSERT_TRUE(calls.flush().ok());
    EXPECT_EQ(pages_mapped_at(w.pid(), base, pages), pages);
    EXPECT_EQ(calls.round_trips(), 2u);

    // The first failure is the one reported, with its own words.
    ASSERT_TRUE(calls.add("getpid", "fine", SYS_getpid, {}).ok());
    ASSERT_TRUE(calls.add("close", "a descriptor that is not open", SYS_close, {999999, 0, 0, 0, 0, 0}).ok());
    ASSERT_TRUE(calls.add("munmap", "too late to matter", SYS_munmap, {1, 1, 0, 0, 0, 0}).ok());
    auto failed = calls.flush();
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().err, EBADF);
    EXPECT_NE(failed.error().message().find("a descriptor that is not open"), std::string::npos) << failed.error().message();
    // A value other than the one expected (an mmap placed elsewhere) fails too.
    ASSERT_TRUE(calls.add("getpid", "the pid", SYS_getpid, {}, static_cast<long>(w.pid()) + 1).ok());
    auto wrong = calls.flush();
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.error().err, EFAULT);
    EXPECT_NE(wrong.error().message().find("the pid"), std::string::npos) << wrong.error().message();

    ASSERT_TRUE((*inj)->syscall(SYS_munmap, base, pages * 4096).ok());
    ASSERT_TRUE((*inj)->cure().ok());
  }
  frozen->detach();
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

}  // namespace
}  // namespace wpckpt::ptrace
