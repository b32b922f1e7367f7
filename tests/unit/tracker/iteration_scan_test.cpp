// The tracker against a real cooperating process: dirty_writer started with
// the agent preloaded and no writer threads, written to from here with
// process_vm_writev (remote writes into protected pages are tracked too).
#include "tracker/iteration_scan.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/support/test_support.hpp"
#include "tracker/agent_link.hpp"

namespace wpckpt::tracker {
namespace {

struct Target {
  test::TempDir dir;
  test::ChildProcess child;
  uint64_t buf = 0, size = 0;
};

void start_target(Target& t, std::vector<std::string> extra_args = {}) {
  std::string ready = (t.dir / "ready").string();
  std::vector<std::string> argv = {test::workload("dirty_writer"), "--ready", ready, "--mib", "4", "--threads", "0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  t.child = test::ChildProcess::start(argv, {"LD_PRELOAD=" + std::string(WPCKPT_BUILD_DIR) + "/libwpckpt-agent.so"});
  ASSERT_TRUE(test::wait_until([&] { return std::filesystem::exists(ready); }));
  std::istringstream in(test::read_file(ready));
  std::string word, addr;
  in >> word >> addr >> t.size;
  t.buf = std::stoull(addr, nullptr, 16);
}

const ScannedArea* area_at(const IterationScan& scan, uint64_t addr) {
  for (const ScannedArea& a : scan.areas)
    if (a.vma.start <= addr && addr < a.vma.end) return &a;
  return nullptr;
}

void remote_write(pid_t pid, uint64_t addr, char value) {
  iovec local{&value, 1}, remote{reinterpret_cast<void*>(addr), 1};
  ASSERT_EQ(process_vm_writev(pid, &local, 1, &remote, 1, 0), 1);
}

TEST(IterationScan, FirstScanTakesAllThenOnlyWrittenPages) {
  Target t;
  start_target(t);
  auto link = AgentLink::attach(t.child.pid());
  ASSERT_TRUE(link.ok()) << link.error().message();
  auto scanner = PagemapScanner::open(t.child.pid());
  ASSERT_TRUE(scanner.ok());

  auto first = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = false});
  ASSERT_TRUE(first.ok()) << first.error().message();
  const ScannedArea* buf = area_at(*first, t.buf);
  ASSERT_NE(buf, nullptr);
  EXPECT_EQ(buf->kind, AreaKind::Tracked);
  EXPECT_TRUE(buf->fresh);
  uint64_t reported = 0;
  for (auto& r : buf->regions) {
    uint64_t lo = std::max(r.start, t.buf), hi = std::min(r.end, t.buf + t.size);
    if (lo < hi && (r.categories & uapi::kPageIsPresent)) reported += (hi - lo) / kPageSize;
  }
  EXPECT_EQ(reported, t.size / kPageSize);  // filled before start: every page present and reported
  for (const ScannedArea& a : first->areas) {
    if (a.vma.name == "[vdso]" || a.vma.name == "[vvar]") {
      EXPECT_EQ(a.kind, AreaKind::NoContents);
    }
  }

  remote_write(t.child.pid(), t.buf + 3 * kPageSize + 17, 'x');
  remote_write(t.child.pid(), t.buf + 7 * kPageSize, 'y');
  auto second = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true});
  ASSERT_TRUE(second.ok()) << second.error().message();
  buf = area_at(*second, t.buf);
  ASSERT_NE(buf, nullptr);
  EXPECT_FALSE(buf->fresh);
  std::vector<uint64_t> pages;
  for (auto& r : buf->regions) {
    for (uint64_t a = std::max(r.start, t.buf); a < std::min(r.end, t.buf + t.size); a += kPageSize)
      pages.push_back((a - t.buf) / kPageSize);
  }
  EXPECT_EQ(pages, (std::vector<uint64_t>{3, 7}));
  auto jobs = page_jobs(*buf);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_FALSE(jobs[0].zero);

  auto third = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true});
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(area_at(*third, t.buf)->regions.empty());
  // Untrusted again: everything comes back.
  auto fourth = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = false});
  ASSERT_TRUE(fourth.ok());
  EXPECT_TRUE(area_at(*fourth, t.buf)->fresh);
  EXPECT_FALSE(area_at(*fourth, t.buf)->regions.empty());
}

TEST(IterationScan, SmallOutputVectorStillCoversEverything) {
  Target t;
  start_target(t);
  auto link = AgentLink::attach(t.child.pid());
  ASSERT_TRUE(link.ok()) << link.error().message();
  auto pm = PagemapScanner::open(t.child.pid());
  ASSERT_TRUE(pm.ok());
  ASSERT_TRUE(scan_iteration(t.child.pid(), link->uffd(), *pm, {.trust_marks = false}).ok());
  for (uint64_t page = 0; page < t.size / kPageSize; page += 2) remote_write(t.child.pid(), t.buf + page * kPageSize, 1);
  // Two regions per call force hundreds of resumed walks.
  PagemapScanner tiny(UniqueFd(::open(("/proc/" + std::to_string(t.child.pid()) + "/pagemap").c_str(), O_RDONLY)), 2);
  auto scan = scan_iteration(t.child.pid(), link->uffd(), tiny, {.trust_marks = true});
  ASSERT_TRUE(scan.ok()) << scan.error().message();
  uint64_t reported = 0;
  for (auto& r : area_at(*scan, t.buf)->regions) {
    uint64_t lo = std::max(r.start, t.buf), hi = std::min(r.end, t.buf + t.size);
    if (lo < hi) reported += (hi - lo) / kPageSize;
  }
  EXPECT_EQ(reported, t.size / kPageSize / 2);
  EXPECT_GT(tiny.ioctl_calls(), 100u);
}

TEST(AgentLink, ProcessWithoutAgentGetsAHint) {
  test::ChildProcess sleeper = test::ChildProcess::start({"/bin/sleep", "30"});
  auto link = AgentLink::attach(sleeper.pid());
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.error().hint.find("wpckpt run --"), std::string::npos);
}

TEST(AgentLink, OneScannerAtATime) {
  Target t;
  start_target(t, {"--fork", "--pause-us", "20000"});
  auto parent = AgentLink::attach(t.child.pid());
  ASSERT_TRUE(parent.ok()) << parent.error().message();
  EXPECT_NE(parent->token(), 0u);
  EXPECT_TRUE(parent->lock().ok());
  auto second = AgentLink::attach(t.child.pid());
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->lock().ok());  // one scanner at a time
  parent->unlock();
  EXPECT_TRUE(second->lock().ok());
}

}  // namespace
}  // namespace wpckpt::tracker
