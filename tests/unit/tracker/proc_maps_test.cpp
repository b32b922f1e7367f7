#include "tracker/proc_maps.hpp"

#include "tracker/memory_kind.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <cstdio>
#include <sys/mman.h>
#include <unistd.h>

namespace wpckpt::tracker {
namespace {

TEST(ProcMaps, ParsesLinesWithAndWithoutNames) {
  Vma v;
  ASSERT_TRUE(parse_maps_line("7f0000000000-7f0000002000 rw-p 00001000 08:01 1234   /usr/lib/x.so", v));
  EXPECT_EQ(v.start, 0x7f0000000000u);
  EXPECT_EQ(v.size(), 0x2000u);
  EXPECT_EQ(v.prot_string(), "rw-p");
  EXPECT_EQ(v.offset, 0x1000u);
  EXPECT_EQ(v.dev_major, 8u);
  EXPECT_EQ(v.inode, 1234u);
  EXPECT_EQ(v.name, "/usr/lib/x.so");
  ASSERT_TRUE(parse_maps_line("7ffd00000000-7ffd00001000 r-xs 00000000 00:00 0 ", v));
  EXPECT_TRUE(v.shared && v.exec && !v.write);
  EXPECT_TRUE(v.name.empty());
  EXPECT_EQ(v.inode, 0u);
  ASSERT_TRUE(parse_maps_line("7f00-8f00 rw-p 00000000 00:01 77 /memfd:x (deleted)", v));
  EXPECT_EQ(v.name, "/memfd:x (deleted)");
  EXPECT_FALSE(parse_maps_line("garbage", v));
  EXPECT_FALSE(parse_maps_line("2000-1000 rw-p 0 00:00 0", v));
  EXPECT_FALSE(parse_maps_line("1000-2000 rw-p", v));
  EXPECT_FALSE(parse_maps_line("1000-2000 rw 0 00:00 0", v));
  EXPECT_FALSE(parse_maps_line("1000-2000 rw-pX 0 00:00 0", v));
  EXPECT_FALSE(parse_maps_line("1000-2000 rw-p 0 00-00 0", v));
  EXPECT_FALSE(parse_maps_line("1000-2000 rw-p 0 00:00 x", v));
  EXPECT_FALSE(parse_maps_line("1000 2000 rw-p 0 00:00 0", v));
  ASSERT_TRUE(parse_maps_line("1000-2000 ---p 0 fd:1 18446744073709551615 /a b\\012c", v));
  EXPECT_EQ(v.inode, UINT64_MAX);
  EXPECT_EQ(v.dev_major, 0xfdu);
  EXPECT_EQ(v.name, "/a b\\012c");
}

// Every line the kernel writes parses, and says what the line says.
TEST(ProcMaps, ParsesEveryLineOfThisProcess) {
  std::string text = test::read_file("/proc/self/maps");
  size_t lines = 0;
  for (size_t pos = 0; pos < text.size(); ++lines) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    Vma v;
    ASSERT_TRUE(parse_maps_line(line, v)) << line;
    char head[128];
    std::snprintf(head, sizeof head, "%08llx-%08llx %s %08llx %02x:%02x %llu", (unsigned long long)v.start,
                  (unsigned long long)v.end, v.prot_string().c_str(), (unsigned long long)v.offset, v.dev_major,
                  v.dev_minor, (unsigned long long)v.inode);
    EXPECT_EQ(line.rfind(head, 0), 0u) << line << " vs " << head;
    if (!v.name.empty()) {
      EXPECT_EQ(line.substr(line.size() - v.name.size()), v.name);
    }
  }
  EXPECT_GT(lines, 5u);
}

TEST(ProcMaps, SeesOwnMappingWithFlags) {
  size_t len = 3 * 4096;
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  // A read-only middle page is an area of its own: it cannot merge with its
  // writable neighbours.
  uint64_t a = reinterpret_cast<uint64_t>(p);
  ASSERT_EQ(mprotect(reinterpret_cast<void*>(a + 4096), 4096, PROT_READ), 0);
  auto vmas = read_smaps(getpid());
  ASSERT_TRUE(vmas.ok()) << vmas.error().message();
  bool found = false;
  for (const Vma& v : *vmas) {
    if (v.start == a + 4096 && v.end == a + 2 * 4096) {
      found = true;
      EXPECT_EQ(v.prot_string(), "r--p");
      EXPECT_TRUE(v.has_flag("rd"));
      EXPECT_FALSE(v.has_flag("wr"));
      EXPECT_EQ(classify_memory(v), MemoryKind::Anon);
    }
  }
  EXPECT_TRUE(found);
  auto maps = read_maps(getpid());
  ASSERT_TRUE(maps.ok());
  bool vdso = false;
  for (const Vma& v : *maps) vdso = vdso || (v.name == "[vdso]" && classify_memory(v) == MemoryKind::Vdso);
  EXPECT_TRUE(vdso);
  munmap(p, len);
}

// The flags of an earlier smaps are reused for areas that are still the
// same; an area created since is read again (a new smaps), never left
// without flags.
TEST(ProcMaps, ReusesEarlierFlagsOnlyForUnchangedAreas) {
  // A sleeping child holds still; this test's own heap grows as it reads.
  test::ChildProcess sleeper = test::ChildProcess::start({"/bin/sleep", "30"});
  usleep(100000);  // past its exec and dynamic loading
  auto earlier = read_smaps(sleeper.pid());
  ASSERT_TRUE(earlier.ok()) << earlier.error().message();
  // Mark the earlier areas so that reuse is visible.
  std::vector<Vma> marked = *earlier;
  for (Vma& v : marked) v.vm_flags.push_back("marked");
  auto same = read_maps_reusing_flags(sleeper.pid(), marked);
  ASSERT_TRUE(same.ok()) << same.error().message();
  ASSERT_EQ(same->size(), marked.size());
  for (size_t i = 0; i < same->size(); ++i) {
    EXPECT_EQ((*same)[i].start, marked[i].start);
    EXPECT_TRUE((*same)[i].has_flag("marked")) << (*same)[i].name;
  }

  // This process's own areas differ from the child's: read again whole.
  void* p = mmap(nullptr, 2 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto changed = read_maps_reusing_flags(getpid(), marked);
  ASSERT_TRUE(changed.ok()) << changed.error().message();
  bool found = false;
  for (const Vma& v : *changed) {
    EXPECT_FALSE(v.has_flag("marked")) << "a changed address space is read again whole";
    if (v.start <= reinterpret_cast<uint64_t>(p) && reinterpret_cast<uint64_t>(p) < v.end) {
      found = true;
      EXPECT_TRUE(v.has_flag("rd"));
      EXPECT_FALSE(v.has_flag("wr"));
    }
  }
  EXPECT_TRUE(found);
  munmap(p, 2 * 4096);
}

}  // namespace
}  // namespace wpckpt::tracker
