// The pager's picture of the address space (lib/restore/lazy_regions.hpp):
// what each userfaultfd event does to it.
#include "lib/restore/lazy_regions.hpp"

#include <gtest/gtest.h>

namespace wpckpt::restore {
namespace {

constexpr uint64_t kP = 4096;

LazyRegion region(uint64_t start, uint64_t pages, bool wipe = false) {
  LazyRegion r;
  r.start = r.image_start = start;
  r.end = start + pages * kP;
  r.wipe_on_fork = wipe;
  r.state.assign(pages, PageState::Pending);
  return r;
}

TEST(LazyRegions, FindsTheRegionHoldingAnAddress) {
  RegionMap m({region(0x20000, 4), region(0x10000, 4)});
  ASSERT_NE(m.find(0x10000), nullptr);
  EXPECT_EQ(m.find(0x13fff)->start, 0x10000u);
  EXPECT_EQ(m.find(0x14000), nullptr);
  EXPECT_EQ(m.find(0x20000 + 3 * kP)->start, 0x20000u);
  EXPECT_EQ(m.find(0x0fff), nullptr);
}

TEST(LazyRegions, RemoveMakesPagesZeroWithoutSplitting) {
  RegionMap m({region(0x10000, 8)});
  m.remove(0x10000 + 2 * kP, 0x10000 + 4 * kP);
  ASSERT_EQ(m.regions().size(), 1u);
  EXPECT_EQ(m.count(PageState::Zero), 2u);
  EXPECT_EQ(m.find(0x10000 + 2 * kP)->at(0x10000 + 2 * kP), PageState::Zero);
  EXPECT_EQ(m.find(0x10000 + 4 * kP)->at(0x10000 + 4 * kP), PageState::Pending);
}

TEST(LazyRegions, UnmapForgetsTheMiddleOfARegion) {
  RegionMap m({region(0x10000, 8)});
  m.find(0x10000 + 6 * kP)->at(0x10000 + 6 * kP) = PageState::Done;
  m.unmap(0x10000 + 2 * kP, 0x10000 + 5 * kP);
  ASSERT_EQ(m.regions().size(), 2u);
  EXPECT_EQ(m.regions()[0].end, 0x10000 + 2 * kP);
  EXPECT_EQ(m.regions()[1].start, 0x10000 + 5 * kP);
  EXPECT_EQ(m.regions()[1].image_start, 0x10000 + 5 * kP);
  EXPECT_EQ(m.regions()[1].at(0x10000 + 6 * kP), PageState::Done);  // states follow their pages
  EXPECT_EQ(m.count(PageState::Pending), 4u);
}

TEST(LazyRegions, RemapMovesPagesAndKeepsWhereTheirContentsAre) {
  RegionMap m({region(0x10000, 8), region(0x40000, 2)});
  m.find(0x10000 + 3 * kP)->at(0x10000 + 3 * kP) = PageState::Done;
  // Move pages 2..5 onto the second region (which the move replaces).
  m.remap(0x10000 + 2 * kP, 0x40000, 4 * kP);
  LazyRegion* moved = m.find(0x40000);
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(moved->end, 0x40000 + 4 * kP);
  EXPECT_EQ(moved->image_start, 0x10000 + 2 * kP);  // served from where they were dumped
  EXPECT_EQ(moved->at(0x40000 + kP), PageState::Done);
  EXPECT_EQ(m.find(0x10000 + 2 * kP), nullptr);
  EXPECT_EQ(m.count(PageState::Pending) + m.count(PageState::Done), 8u);
  for (size_t i = 1; i < m.regions().size(); ++i) EXPECT_LT(m.regions()[i - 1].start, m.regions()[i].start);
}

TEST(LazyRegions, ForkChildInheritsStatesAndWipeOnForkReadsZero) {
  RegionMap m({region(0x10000, 4), region(0x20000, 4, true)});
  m.find(0x10000)->at(0x10000) = PageState::Done;
  RegionMap child = m.forked();
  EXPECT_EQ(child.find(0x10000)->at(0x10000), PageState::Done);
  EXPECT_EQ(child.find(0x10000 + kP)->at(0x10000 + kP), PageState::Pending);
  EXPECT_EQ(child.find(0x20000)->at(0x20000), PageState::Zero);
  EXPECT_EQ(m.find(0x20000)->at(0x20000), PageState::Pending);  // the parent's stay
}

}  // namespace
}  // namespace wpckpt::restore
