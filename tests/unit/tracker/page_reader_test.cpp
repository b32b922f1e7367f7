// PageReader on this very process: readable runs come through
// process_vm_readv, PROT_NONE runs through /proc/PID/mem, and unmapped
// pages are reported as holes, all in address order.
#include "tracker/page_reader.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace wpckpt::tracker {
namespace {

// `pages` fresh pages filled with 'a', 'b', ... one letter per page.
char* lettered_pages(size_t pages) {
  auto* mem = static_cast<char*>(mmap(nullptr, pages * kPageSize, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) return nullptr;
  for (size_t p = 0; p < pages; ++p) std::memset(mem + p * kPageSize, static_cast<int>('a' + p), kPageSize);
  return mem;
}

TEST(PageReader, ReadsProtNoneAndReportsHoles) {
  const size_t pages = 8;
  char* mem = lettered_pages(pages);
  ASSERT_NE(mem, nullptr);
  ASSERT_EQ(mprotect(mem + 2 * kPageSize, 2 * kPageSize, PROT_NONE), 0);  // pages 2-3: not readable
  ASSERT_EQ(munmap(mem + 5 * kPageSize, kPageSize), 0);                  // page 5: gone
  uint64_t base = reinterpret_cast<uint64_t>(mem);

  auto reader = PageReader::open(getpid(), 2 * kPageSize);  // a tiny buffer forces several batches
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  std::vector<PageRun> runs = {{base, 7}};
  std::string seen;  // one letter per page, '0' for a hole
  uint64_t next = base;
  auto r = reader->read(
      runs,
      [&](uint64_t addr, std::span<const std::byte> data) -> Result<void> {
        EXPECT_EQ(addr, next);
        for (size_t off = 0; off < data.size(); off += kPageSize) seen += static_cast<char>(data[off]);
        next = addr + data.size();
        return ok();
      },
      [&](uint64_t addr, uint64_t count) -> Result<void> {
        EXPECT_EQ(addr, next);
        seen += std::string(count, '0');
        next = addr + count * kPageSize;
        return ok();
      });
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(seen, "abcde0g");
  EXPECT_EQ(reader->stats().pages_unreadable, 1u);
  EXPECT_GT(reader->stats().fallback_reads, 0u);
  munmap(mem, pages * kPageSize);
}

// With a room callback the reader reads into the caller's memory: each
// piece is handed out where it was read, rooms are taken anew after use,
// and the PROT_NONE fallback and holes keep the order.
TEST(PageReader, ReadsIntoTheCallersRooms) {
  const size_t pages = 8;
  char* mem = lettered_pages(pages);
  ASSERT_NE(mem, nullptr);
  ASSERT_EQ(mprotect(mem + 2 * kPageSize, kPageSize, PROT_NONE), 0);  // page 2: the fallback
  ASSERT_EQ(munmap(mem + 5 * kPageSize, kPageSize), 0);              // page 5: a hole
  uint64_t base = reinterpret_cast<uint64_t>(mem);

  auto reader = PageReader::open(getpid());
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  std::vector<std::byte> dest(pages * kPageSize);
  std::byte* cursor = dest.data();  // rooms of at most 3 pages, one after the other
  int rooms = 0, in_place = 0;
  std::string seen;
  auto r = reader->read(
      std::vector<PageRun>{{base, 7}},
      [&](uint64_t addr, std::span<const std::byte> data) -> Result<void> {
        std::byte* place = dest.data() + (addr - base);
        if (data.data() == place) ++in_place;
        else std::memcpy(place, data.data(), data.size());
        for (size_t off = 0; off < data.size(); off += kPageSize) seen += static_cast<char>(place[off]);
        cursor = place + data.size();
        return ok();
      },
      [&](uint64_t addr, uint64_t count) -> Result<void> {
        seen += std::string(count, '0');
        cursor = dest.data() + (addr - base) + count * kPageSize;
        return ok();
      },
      [&](size_t bytes) {
        ++rooms;
        return std::span<std::byte>(cursor, std::min<size_t>({bytes, 3 * kPageSize,
                                                              static_cast<size_t>(dest.data() + dest.size() - cursor)}));
      });
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(seen, "abcde0g");
  EXPECT_GT(rooms, 2);
  EXPECT_GT(in_place, 2);  // every piece read by a call landed where the caller wanted it
  EXPECT_EQ(static_cast<char>(dest[6 * kPageSize]), 'g');
  munmap(mem, pages * kPageSize);
}

}  // namespace
}  // namespace wpckpt::tracker
