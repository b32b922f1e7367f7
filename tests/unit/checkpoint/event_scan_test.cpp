// plan_scan: when a pre-dump may scan only what the event queue named, and
// what that scan must cover.
#include "lib/checkpoint/event_scan.hpp"

#include <gtest/gtest.h>

#include <utility>

namespace wpckpt::checkpoint {
namespace {

using tracker::AddressRange;

// A reader whose windows the test writes.
class FakeReader final : public tracker::EventReader {
 public:
  pid_t pid() const override { return 1; }
  tracker::EventWindow take_window() override { return std::exchange(next, tracker::EventWindow{}); }
  uint64_t lost_total() const override { return 0; }
  tracker::EventWindow next;
};

bool covers(const std::vector<AddressRange>& ranges, AddressRange r) {
  for (const AddressRange& x : ranges)
    if (x.start <= r.start && r.end <= x.end) return true;
  return false;
}

struct Tracked {
  FakeReader reader;
  EventTracking tracking;
  Tracked() {
    tracking.reader = &reader;
    tracking.taken_before_epoch = 4;  // the parent's scan was epoch 4
  }
};

TEST(PlanScan, ScansWhatTheEventsNamed) {
  Tracked t;
  t.reader.next.pages = {0x10000};
  ScanPlan plan = plan_scan(&t.tracking, "", 5);
  ASSERT_TRUE(plan.events) << plan.reason;
  EXPECT_TRUE(covers(plan.ranges, {0x10000, 0x11000}));
  EXPECT_FALSE(covers(plan.ranges, {0x40000000, 0x40001000}));
}

// An area the parent's iteration left registered but unprotected reports
// written pages whose writes raised no fault: the events-mode scan covers it
// whole, says so, and only once (that scan re-protects it).
TEST(PlanScan, CoversTheAreasTheParentLeftUnprotected) {
  Tracked t;
  t.reader.next.pages = {0x10000};
  const AddressRange area{0x40000000, 0x40100000};
  t.tracking.unprotected.push_back(area);
  ScanPlan plan = plan_scan(&t.tracking, "", 5);
  ASSERT_TRUE(plan.events) << plan.reason;
  EXPECT_TRUE(covers(plan.ranges, area));
  EXPECT_TRUE(covers(plan.ranges, {0x10000, 0x11000}));
  EXPECT_NE(plan.reason.find("left unprotected"), std::string::npos) << plan.reason;
  EXPECT_TRUE(t.tracking.unprotected.empty());

  t.tracking.taken_before_epoch = 5;
  t.tracking.previous = plan.window;
  ScanPlan next = plan_scan(&t.tracking, "", 6);
  ASSERT_TRUE(next.events) << next.reason;
  EXPECT_FALSE(covers(next.ranges, area));
}

// A full scan covers every armed area anyway: the ranges are consumed.
TEST(PlanScan, AFullScanConsumesTheUnprotectedAreasToo) {
  Tracked t;
  t.reader.next.incomplete = "1 event records were lost (ring buffer full)";
  t.tracking.unprotected.push_back({0x40000000, 0x40100000});
  ScanPlan plan = plan_scan(&t.tracking, "", 5);
  EXPECT_FALSE(plan.events);
  EXPECT_TRUE(t.tracking.unprotected.empty());
}

}  // namespace
}  // namespace wpckpt::checkpoint
