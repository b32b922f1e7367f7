// The tracker against a real cooperating process: dirty_writer started with
// the agent preloaded and no writer threads, written to from here with
// process_vm_writev (remote writes into protected pages are tracked too).
#include "tracker/iteration_scan.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/uio.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "tests/support/test_support.hpp"
#include "tracker/agent_link.hpp"
#include "tracker/uffd_ops.hpp"

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

// Pages of [lo, hi) that jobs say to read.
uint64_t pages_to_read(const std::vector<PageJob>& jobs, uint64_t lo, uint64_t hi) {
  uint64_t pages = 0;
  for (const PageJob& j : jobs) {
    uint64_t s = std::max(j.addr, lo), e = std::min(j.addr + j.pages * kPageSize, hi);
    if (!j.zero && s < e) pages += (e - s) / kPageSize;
  }
  return pages;
}

// A deferred area is armed but left unscanned; scanned chunk by chunk, a
// page is protected only from its chunk's scan on: one written before that
// is read in this iteration and not reported again, one written after it
// is reported by the next iteration.
// A target whose buffer spans three chunks, attached, after a first scan
// that deferred the buffer's area.
class DeferredArea : public ::testing::Test {
 protected:
  void SetUp() override {
    start_target(t, {"--mib", "80"});
    auto attached = AgentLink::attach(t.child.pid());
    ASSERT_TRUE(attached.ok()) << attached.error().message();
    link.emplace(std::move(attached).value());
    auto opened = PagemapScanner::open(t.child.pid());
    ASSERT_TRUE(opened.ok());
    scanner.emplace(std::move(opened).value());
    auto scan = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = false, .defer_fresh = true});
    ASSERT_TRUE(scan.ok()) << scan.error().message();
    first = std::move(scan).value();
    buf = area_at(first, t.buf);
    ASSERT_NE(buf, nullptr);
    ASSERT_TRUE(buf->deferred);
  }
  Target t;
  std::optional<AgentLink> link;
  std::optional<PagemapScanner> scanner;
  IterationScan first;
  const ScannedArea* buf = nullptr;
};

// The pages of [lo, hi) an area's regions report.
std::vector<uint64_t> reported_pages(const ScannedArea& a, uint64_t lo, uint64_t hi) {
  std::vector<uint64_t> pages;
  for (const auto& r : a.regions)
    for (uint64_t p = std::max(r.start, lo); p < std::min(r.end, hi); p += kPageSize) pages.push_back(p);
  return pages;
}

TEST_F(DeferredArea, IsProtectedChunkByChunk) {
  EXPECT_TRUE(buf->fresh);
  EXPECT_TRUE(buf->regions.empty());
  ASSERT_GT(buf->vma.end - t.buf, 2 * FreshAreaChunks::kChunkBytes);

  const uint64_t in_first_chunk = t.buf + kPageSize, in_last_chunk = t.buf + 2 * FreshAreaChunks::kChunkBytes + kPageSize;
  ASSERT_LT(in_first_chunk, buf->vma.start + FreshAreaChunks::kChunkBytes);
  FreshAreaChunks chunks(link->uffd(), *scanner, *buf, kScanReturnMask);
  std::vector<PageJob> jobs;
  ASSERT_TRUE(chunks.next(jobs).ok());
  remote_write(t.child.pid(), in_first_chunk, 'a');  // after its chunk's scan: the next iteration's
  remote_write(t.child.pid(), in_last_chunk, 'b');   // before its chunk's scan: this iteration's
  while (!chunks.done()) ASSERT_TRUE(chunks.next(jobs).ok());
  EXPECT_FALSE(chunks.changed());
  EXPECT_EQ(pages_to_read(jobs, t.buf, t.buf + t.size), t.size / kPageSize);  // all filled: all read

  auto second = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true, .defer_fresh = true});
  ASSERT_TRUE(second.ok()) << second.error().message();
  buf = area_at(*second, t.buf);
  ASSERT_NE(buf, nullptr);
  EXPECT_FALSE(buf->deferred);  // armed before: scanned as always
  EXPECT_EQ(reported_pages(*buf, t.buf, t.buf + t.size), std::vector<uint64_t>{in_first_chunk});

  // Marks not trusted: the area, registered before, is taken whole again,
  // each chunk unprotected just before its scan (its write before that
  // faults, and is reported by that scan).
  auto third = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = false, .defer_fresh = true});
  ASSERT_TRUE(third.ok()) << third.error().message();
  buf = area_at(*third, t.buf);
  ASSERT_NE(buf, nullptr);
  ASSERT_TRUE(buf->deferred);
  EXPECT_TRUE(buf->registered);
  FreshAreaChunks again(link->uffd(), *scanner, *buf, kScanReturnMask);
  jobs.clear();
  ASSERT_TRUE(again.next(jobs).ok());
  remote_write(t.child.pid(), in_first_chunk + kPageSize, 'c');
  remote_write(t.child.pid(), in_last_chunk + kPageSize, 'd');
  while (!again.done()) ASSERT_TRUE(again.next(jobs).ok());
  EXPECT_FALSE(again.changed());
  EXPECT_EQ(pages_to_read(jobs, t.buf, t.buf + t.size), t.size / kPageSize);
  auto fourth = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true});
  ASSERT_TRUE(fourth.ok()) << fourth.error().message();
  EXPECT_EQ(reported_pages(*area_at(*fourth, t.buf), t.buf, t.buf + t.size),
            std::vector<uint64_t>{in_first_chunk + kPageSize});
}

// A deferred area that loses its registration while it is copied (the
// program replaced part of it): its rest is read by presence, unprotected.
TEST_F(DeferredArea, ChangedWhileCopiedIsReadByPresence) {
  FreshAreaChunks chunks(link->uffd(), *scanner, *buf, kScanReturnMask);
  std::vector<PageJob> jobs;
  ASSERT_TRUE(chunks.next(jobs).ok());
  // What munmap and mmap of the same range would do to the tracking: the
  // second chunk's range has no async write-protect any more.
  const uint64_t lost = buf->vma.start + FreshAreaChunks::kChunkBytes;
  ASSERT_TRUE(unregister(link->uffd(), lost, lost + 4 * kPageSize).ok());
  while (!chunks.done()) ASSERT_TRUE(chunks.next(jobs).ok());
  EXPECT_TRUE(chunks.changed());
  EXPECT_EQ(pages_to_read(jobs, t.buf, t.buf + t.size), t.size / kPageSize);
  // The unregistered range is what the next iteration takes whole.
  auto second = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true});
  ASSERT_TRUE(second.ok()) << second.error().message();
  const ScannedArea* again = area_at(*second, lost);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(again->fresh);
}

// Pages of [lo, hi) the kernel reports written, read without re-protecting
// (what the cross-check of an events-mode scan reads).
uint64_t written_now(PagemapScanner& scanner, uint64_t lo, uint64_t hi) {
  ScanRequest r;
  r.start = lo;
  r.end = hi;
  r.category_mask = uapi::kPageIsWritten;
  r.return_mask = uapi::kPageIsWritten;
  auto regions = scanner.scan(r);
  EXPECT_TRUE(regions.ok()) << regions.error().message();
  uint64_t pages = 0;
  if (regions)
    for (const auto& reg : *regions) pages += (reg.end - reg.start) / kPageSize;
  return pages;
}

// What stays registered of an area that changed while copied was never
// write-protected: the kernel reports all of it written, yet writing it
// raises no fault, so no event ever names it. An events-mode scan of what
// the events named misses it (the flaky cross-check of the churn workload);
// naming the whole area, as capture_memory does (EventTracking::unprotected),
// takes and re-protects it as a full scan would.
TEST_F(DeferredArea, ChangedWhileCopiedLeavesItsRestToAScanOfTheWholeArea) {
  FreshAreaChunks chunks(link->uffd(), *scanner, *buf, kScanReturnMask);
  std::vector<PageJob> jobs;
  ASSERT_TRUE(chunks.next(jobs).ok());
  const uint64_t lost = buf->vma.start + FreshAreaChunks::kChunkBytes;
  const uint64_t rest = lost + 4 * kPageSize, end = buf->vma.end;
  ASSERT_TRUE(unregister(link->uffd(), lost, rest).ok());
  while (!chunks.done()) ASSERT_TRUE(chunks.next(jobs).ok());
  ASSERT_TRUE(chunks.changed());
  const uint64_t rest_pages = (end - rest) / kPageSize;
  EXPECT_EQ(written_now(*scanner, rest, end), rest_pages);

  // Nothing written since (the target has no writer): no event names anything.
  const std::vector<AddressRange> named_by_events;
  auto events_only = scan_iteration(t.child.pid(), link->uffd(), *scanner,
                                    {.trust_marks = true, .only_ranges = &named_by_events});
  ASSERT_TRUE(events_only.ok()) << events_only.error().message();
  const ScannedArea* after = area_at(*events_only, rest);
  ASSERT_NE(after, nullptr);
  EXPECT_FALSE(after->fresh);  // still registered: trusted
  EXPECT_TRUE(after->regions.empty());
  EXPECT_EQ(written_now(*scanner, rest, end), rest_pages) << "left unprotected, unnamed";

  const std::vector<AddressRange> whole_area = {{buf->vma.start, buf->vma.end}};
  auto with_area = scan_iteration(t.child.pid(), link->uffd(), *scanner,
                                  {.trust_marks = true, .only_ranges = &whole_area});
  ASSERT_TRUE(with_area.ok()) << with_area.error().message();
  after = area_at(*with_area, rest);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(reported_pages(*after, rest, end).size(), rest_pages);
  EXPECT_EQ(written_now(*scanner, rest, end), 0u) << "re-protected by that scan";
}

// What a scan found, area by area, for comparing two ways of scanning.
using AreaFindings = std::vector<std::tuple<uint64_t, uint64_t, AreaKind, bool, std::vector<uapi::PageRegion>>>;
AreaFindings findings(const IterationScan& scan, uint64_t lo = 0, uint64_t hi = UINT64_MAX) {
  AreaFindings out;
  for (const ScannedArea& a : scan.areas)
    if (lo <= a.vma.start && a.vma.end <= hi) out.emplace_back(a.vma.start, a.vma.end, a.kind, a.fresh, a.regions);
  return out;
}

uint64_t written_pages_in(const IterationScan& scan, uint64_t lo, uint64_t hi) {
  uint64_t pages = 0;
  for (const ScannedArea& a : scan.areas) {
    if (a.kind != AreaKind::Tracked) continue;
    for (const auto& r : a.regions) {
      uint64_t s = std::max(r.start, lo), e = std::min(r.end, hi);
      if (s < e) pages += (e - s) / kPageSize;
    }
  }
  return pages;
}

// Consecutive armed areas are scanned by one call, and so are the
// inaccessible ones; each area must still get exactly what a scan of its
// own would report: frozen with and without re-arming, and running.
TEST(IterationScan, ConsecutiveAreasAreScannedTogetherFrozenOrRunning) {
  Target t;
  const uint64_t triples = 400;  // writable, read-only, inaccessible: 1,200 areas
  start_target(t, {"--split-areas", std::to_string(triples)});
  std::istringstream ready(test::read_file(t.dir / "ready"));
  std::string line;
  uint64_t split = 0;
  while (std::getline(ready, line))
    if (line.rfind("split ", 0) == 0) split = std::stoull(line.substr(6), nullptr, 16);
  ASSERT_NE(split, 0u);
  const uint64_t split_end = split + 3 * triples * kPageSize;
  auto link = AgentLink::attach(t.child.pid());
  ASSERT_TRUE(link.ok()) << link.error().message();
  auto scanner = PagemapScanner::open(t.child.pid());
  ASSERT_TRUE(scanner.ok());
  ASSERT_TRUE(scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = false}).ok());
  ASSERT_EQ(kill(t.child.pid(), SIGSTOP), 0);  // its one thread sleeps anyway; now it is frozen

  const std::vector<uint64_t> written = {0, 1, 2, 97, 211, 398, 399};
  for (uint64_t i : written) remote_write(t.child.pid(), split + 3 * i * kPageSize + 5, 'w');
  remote_write(t.child.pid(), t.buf + 9 * kPageSize, 'b');

  auto one_by_one = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true, .rearm = false});
  ASSERT_TRUE(one_by_one.ok()) << one_by_one.error().message();
  EXPECT_EQ(written_pages_in(*one_by_one, split, split_end), written.size());
  EXPECT_EQ(written_pages_in(*one_by_one, t.buf, t.buf + t.size), 1u);
  EXPECT_GT(one_by_one->scan_calls, 3 * triples);

  // A last iteration: nothing re-armed, the crossed areas walked and dropped.
  auto last = scan_iteration(t.child.pid(), link->uffd(), *scanner,
                             {.trust_marks = true, .rearm = false, .target_stopped = true});
  ASSERT_TRUE(last.ok()) << last.error().message();
  EXPECT_EQ(findings(*last), findings(*one_by_one));
  // The 800 armed areas take one call, the 400 inaccessible ones another.
  EXPECT_LT(last->scan_calls + 3 * triples - 20, one_by_one->scan_calls);
  EXPECT_EQ(last->pages_scanned, one_by_one->pages_scanned);
  // Resumed walks across the crossed areas (two regions per call) change nothing.
  PagemapScanner tiny(UniqueFd(::open(("/proc/" + std::to_string(t.child.pid()) + "/pagemap").c_str(), O_RDONLY)), 2);
  auto resumed = scan_iteration(t.child.pid(), link->uffd(), tiny,
                                {.trust_marks = true, .rearm = false, .target_stopped = true});
  ASSERT_TRUE(resumed.ok()) << resumed.error().message();
  EXPECT_EQ(findings(*resumed), findings(*one_by_one));

  // Re-arming: the same findings, and the next scan finds nothing left.
  auto rearmed = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true, .target_stopped = true});
  ASSERT_TRUE(rearmed.ok()) << rearmed.error().message();
  EXPECT_EQ(findings(*rearmed), findings(*one_by_one));
  auto after = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true, .rearm = false});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(written_pages_in(*after, split, split_end), 0u);
  EXPECT_EQ(written_pages_in(*after, t.buf, t.buf + t.size), 0u);

  // A re-arming scan of a running process batches too, with the same
  // findings in the areas only we write (its agent thread may write its own).
  ASSERT_EQ(kill(t.child.pid(), SIGCONT), 0);
  for (uint64_t i : written) remote_write(t.child.pid(), split + 3 * i * kPageSize + 5, 'v');
  remote_write(t.child.pid(), t.buf + 9 * kPageSize, 'c');
  auto running = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true});
  ASSERT_TRUE(running.ok()) << running.error().message();
  EXPECT_EQ(findings(*running, split, split_end), findings(*one_by_one, split, split_end));
  EXPECT_EQ(written_pages_in(*running, t.buf, t.buf + t.size), 1u);
  EXPECT_EQ(written_pages_in(*running, split, split_end), written.size());
  EXPECT_LT(running->scan_calls + 3 * triples - 20, one_by_one->scan_calls);
  auto settled = scan_iteration(t.child.pid(), link->uffd(), *scanner, {.trust_marks = true, .rearm = false});
  ASSERT_TRUE(settled.ok());
  EXPECT_EQ(written_pages_in(*settled, split, split_end), 0u);
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
