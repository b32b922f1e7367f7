// The prefetch against a real cooperating process (dirty_writer with the
// agent preloaded, no writer threads), written to from here: it reads the
// written pages, at most as many as allowed, and leaves the tracking as it
// was (the dump's own scan in the freeze must still find every page).
#include "lib/checkpoint/page_prefetch.hpp"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <filesystem>
#include <sstream>

#include "tests/support/test_support.hpp"
#include "tracker/agent_link.hpp"
#include "tracker/iteration_scan.hpp"

namespace wpckpt::checkpoint {
namespace {

using tracker::kPageSize;

struct Target {
  test::TempDir dir;
  test::ChildProcess child;
  uint64_t buf = 0, size = 0;
};

void start_target(Target& t) {
  std::string ready = (t.dir / "ready").string();
  t.child = test::ChildProcess::start(
      {test::workload("dirty_writer"), "--ready", ready, "--mib", "4", "--threads", "0"},
      {"LD_PRELOAD=" + std::string(WPCKPT_BUILD_DIR) + "/libwpckpt-agent.so"});
  ASSERT_TRUE(test::wait_until([&] { return std::filesystem::exists(ready); }));
  std::istringstream in(test::read_file(ready));
  std::string word, addr;
  in >> word >> addr >> t.size;
  t.buf = std::stoull(addr, nullptr, 16);
}

void remote_write(pid_t pid, uint64_t addr, char value) {
  iovec local{&value, 1}, remote{reinterpret_cast<void*>(addr), 1};
  ASSERT_EQ(process_vm_writev(pid, &local, 1, &remote, 1, 0), 1);
}

// The buffer's pages a trusting scan reports as written since the last arming.
std::vector<uint64_t> written_in_buffer(const Target& t, const tracker::AgentLink& link) {
  auto scanner = tracker::PagemapScanner::open(t.child.pid());
  EXPECT_TRUE(scanner.ok());
  auto scan = tracker::scan_iteration(t.child.pid(), link.uffd(), *scanner, {.trust_marks = true, .rearm = false});
  EXPECT_TRUE(scan.ok()) << scan.error().message();
  std::vector<uint64_t> pages;
  for (const tracker::ScannedArea& a : scan->areas)
    for (const auto& r : a.regions)
      for (uint64_t at = std::max(r.start, t.buf); at < std::min(r.end, t.buf + t.size); at += kPageSize)
        pages.push_back((at - t.buf) / kPageSize);
  return pages;
}

TEST(PagePrefetch, ReadsTheWrittenPagesAndChangesNoMark) {
  Target t;
  start_target(t);
  auto link = tracker::AgentLink::attach(t.child.pid());
  ASSERT_TRUE(link.ok()) << link.error().message();
  auto scanner = tracker::PagemapScanner::open(t.child.pid());
  ASSERT_TRUE(scanner.ok());
  // Armed: every page protected, nothing written since.
  ASSERT_TRUE(tracker::scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = false}).ok());
  for (uint64_t page : {3, 7, 11}) remote_write(t.child.pid(), t.buf + page * kPageSize + 5, 'w');

  auto all = prefetch_written_pages(t.child.pid(), link->uffd(), nullptr, kPrefetchMaxPages);
  ASSERT_TRUE(all.ok()) << all.error().message();
  // The three pages, and whatever else the idle process wrote (its stack).
  EXPECT_GE(all->pages_read, 3u);
  EXPECT_LT(all->pages_read, 64u);
  EXPECT_GT(all->seconds, 0);

  auto bounded = prefetch_written_pages(t.child.pid(), link->uffd(), nullptr, 2);
  ASSERT_TRUE(bounded.ok()) << bounded.error().message();
  EXPECT_EQ(bounded->pages_read, 2u);

  // Twice prefetched, still written: nothing was re-protected.
  EXPECT_EQ(written_in_buffer(t, *link), (std::vector<uint64_t>{3, 7, 11}));
  // And the pages hold what was written.
  char got = 0;
  iovec local{&got, 1}, remote{reinterpret_cast<void*>(t.buf + 7 * kPageSize + 5), 1};
  ASSERT_EQ(process_vm_readv(t.child.pid(), &local, 1, &remote, 1, 0), 1);
  EXPECT_EQ(got, 'w');
}

TEST(PagePrefetch, FailsCleanlyForAProcessThatIsGone) {
  Target t;
  start_target(t);
  auto link = tracker::AgentLink::attach(t.child.pid());
  ASSERT_TRUE(link.ok()) << link.error().message();
  const pid_t pid = t.child.pid();
  t.child.kill_now();
  auto r = prefetch_written_pages(pid, link->uffd(), nullptr, kPrefetchMaxPages);
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace wpckpt::checkpoint
