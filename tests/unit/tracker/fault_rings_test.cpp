// The reader's side of the write-fault rings (tracker/events/fault_rings.hpp)
// against rings in our own memory, written the way events.bpf.c writes them:
// records come out in order, a slot still being filled waits for the next
// drain, and a slot a writer went round the ring onto is counted lost, never
// passed on. (The BPF side end to end: event_reader_test.cpp.)
#include "tracker/events/fault_rings.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace wpckpt::tracker {
namespace {

constexpr uint64_t kSlots = WPCKPT_FAULT_RING_SLOTS;

struct Collect : EventSink {
  std::vector<uint64_t> pages;
  void on_fault(const wpckpt_fault_record& r) override { pages.push_back(r.addr_kind & ~WPCKPT_EV_KIND_MASK); }
  void on_change(const wpckpt_change_record&) override {}
};

class FaultRingsTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kCpus = 2;
  FaultRingsTest() : memory_(new std::byte[FaultRings::ring_stride() * kCpus]()) {}

  wpckpt_fault_ring& ring(uint32_t cpu) {
    return *reinterpret_cast<wpckpt_fault_ring*>(memory_.get() + cpu * FaultRings::ring_stride());
  }
  // A writer's steps, as events.bpf.c takes them; `finish` false stops
  // before the sequence number (a writer preempted while filling).
  uint64_t write(uint32_t cpu, uint64_t page, bool finish = true) {
    wpckpt_fault_ring& r = ring(cpu);
    uint64_t idx = r.head++;
    wpckpt_fault_slot& s = r.slots[idx & (kSlots - 1)];
    s.seq = 0;
    s.rec = {page | WPCKPT_EV_WRITE_FAULT, 0, 1, 2};
    if (finish) s.seq = idx + 1;
    return idx;
  }
  void finish(uint32_t cpu, uint64_t idx) { ring(cpu).slots[idx & (kSlots - 1)].seq = idx + 1; }

  std::unique_ptr<std::byte[]> memory_;
};

TEST_F(FaultRingsTest, RecordsComeOutInOrderFromEveryCpuAndOnlyOnce) {
  FaultRings rings(memory_.get(), kCpus);
  write(0, 0x1000);
  write(1, 0x5000);
  write(0, 0x2000);
  Collect got;
  EXPECT_EQ(rings.drain(got), 3u);
  EXPECT_EQ(got.pages, (std::vector<uint64_t>{0x1000, 0x2000, 0x5000}));
  EXPECT_EQ(ring(0).tail, 2u);
  Collect again;
  EXPECT_EQ(rings.drain(again), 0u);
  EXPECT_EQ(ring(0).head + ring(1).head, 3u);
  EXPECT_EQ(rings.overwritten(), 0u);
}

TEST_F(FaultRingsTest, ASlotStillBeingFilledWaitsWithWhatFollowsIt) {
  FaultRings rings(memory_.get(), kCpus);
  write(0, 0x1000);
  uint64_t slow = write(0, 0x2000, false);
  write(0, 0x3000);
  Collect first;
  EXPECT_EQ(rings.drain(first), 1u);
  EXPECT_EQ(first.pages, (std::vector<uint64_t>{0x1000}));
  finish(0, slow);
  Collect second;
  EXPECT_EQ(rings.drain(second), 2u);
  EXPECT_EQ(second.pages, (std::vector<uint64_t>{0x2000, 0x3000}));
  EXPECT_EQ(rings.overwritten(), 0u);
}

TEST_F(FaultRingsTest, ASlotWrittenOverBeforeItWasReadIsCountedLost) {
  FaultRings rings(memory_.get(), kCpus);
  // Round the ring once and one more: slot 0 now holds record kSlots, and
  // record 0 is gone.
  for (uint64_t i = 0; i <= kSlots; ++i) write(1, (i + 1) << 12);
  Collect got;
  rings.drain(got);
  EXPECT_EQ(rings.overwritten(), 1u) << "record 0 was overwritten";
  ASSERT_EQ(got.pages.size(), kSlots) << "records 1 .. kSlots are intact";
  EXPECT_EQ(got.pages.front(), 2u << 12);
  EXPECT_EQ(got.pages.back(), (kSlots + 1) << 12) << "the record that went over slot 0";
  Collect next;
  EXPECT_EQ(rings.drain(next), 0u);
  EXPECT_EQ(ring(1).head, kSlots + 1);
}

}  // namespace
}  // namespace wpckpt::tracker
