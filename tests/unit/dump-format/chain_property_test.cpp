// Property: random chains (random areas, stored pages, zero pages, fresh
// ranges, frame sizes) resolve exactly like a simple reference model — page by
// page through read() and source(), run by run through for_each_run(), in
// summary(), and after merge_chain() (also at the frame size of the oldest
// image, whose frames it then copies where they line up).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "dump-format/chain_reader.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/dump-format/image_test_util.hpp"

namespace wpckpt::image::test {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kBase = 0x7f5600000000;
constexpr uint64_t kSpacePages = 160;  // the address space the random areas live in

uint64_t page_addr(uint64_t i) { return kBase + i * kPageSize; }

// 1..4 disjoint areas inside the space; some without contents.
std::vector<MemoryArea> random_areas(std::mt19937_64& rng) {
  std::vector<uint64_t> cuts;
  int n = 2 + static_cast<int>(rng() % 7);
  for (int i = 0; i < n; ++i) cuts.push_back(rng() % (kSpacePages + 1));
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<MemoryArea> areas;
  for (size_t i = 0; i + 1 < cuts.size(); i += 2) areas.push_back(area(page_addr(cuts[i]), page_addr(cuts[i + 1]), rng() % 6 != 0));
  return areas;
}

// The model's answer for one page as of the newest image: the newest image
// with an entry wins; a fresh range stops the search with zero.
struct ImageSpec {
  std::map<uint64_t, std::vector<std::byte>> entries;  // addr -> bytes (all zero = zero entry)
  std::vector<std::pair<uint64_t, uint64_t>> fresh;
};

struct Expected {
  PageSource::Kind kind = PageSource::Zero;
  size_t image = 0;
  const std::vector<std::byte>* bytes = nullptr;
};

Expected model_page(const std::vector<ImageSpec>& newest_first, uint64_t addr) {
  for (size_t i = 0; i < newest_first.size(); ++i) {
    const ImageSpec& img = newest_first[i];
    if (auto it = img.entries.find(addr); it != img.entries.end()) {
      bool zero = std::all_of(it->second.begin(), it->second.end(), [](std::byte b) { return b == std::byte{0}; });
      return zero ? Expected{} : Expected{PageSource::Stored, i, &it->second};
    }
    for (auto [s, e] : img.fresh)
      if (addr >= s && addr < e) return Expected{};
  }
  return Expected{};
}

void check_chain(const fs::path& dir, const std::vector<ImageSpec>& newest_first, const std::vector<MemoryArea>& areas,
                 bool check_sources) {
  auto opened = ImageChain::open(dir);
  ASSERT_TRUE(opened) << opened.error().message();
  const ImageChain& chain = **opened;
  std::vector<std::byte> buf(kPageSize);
  ChainSummary want_sum;
  for (uint64_t i = 0; i < kSpacePages + 2; ++i) {
    uint64_t addr = page_addr(i);
    const MemoryArea* a = nullptr;
    for (const MemoryArea& m : areas)
      if (addr >= m.start && addr < m.end) a = &m;
    PageSource src = chain.source(addr);
    if (!a || !a->contents) {
      EXPECT_EQ(src.kind, PageSource::NotCovered) << std::hex << addr;
      EXPECT_FALSE(chain.read(addr, buf));
      continue;
    }
    Expected want = model_page(newest_first, addr);
    ++want_sum.pages_covered;
    if (want.kind == PageSource::Zero) ++want_sum.pages_zero;
    else if (want.image == 0) ++want_sum.pages_stored;
    else ++want_sum.pages_in_parent;
    if (check_sources) {
      EXPECT_EQ(src.kind, want.kind) << std::hex << addr;
      if (want.kind == PageSource::Stored) {
        EXPECT_EQ(src.image, want.image) << std::hex << addr;
      }
    }
    ASSERT_TRUE(chain.read(addr, buf)) << std::hex << addr;
    if (want.bytes) ASSERT_EQ(0, std::memcmp(buf.data(), want.bytes->data(), kPageSize)) << std::hex << addr;
    else ASSERT_TRUE(std::all_of(buf.begin(), buf.end(), [](std::byte b) { return b == std::byte{0}; })) << std::hex << addr;
  }
  ChainSummary sum = chain.summary();
  if (check_sources) {
    EXPECT_EQ(sum.pages_stored, want_sum.pages_stored);
    EXPECT_EQ(sum.pages_in_parent, want_sum.pages_in_parent);
  }
  EXPECT_EQ(sum.pages_covered, want_sum.pages_covered);
  EXPECT_EQ(sum.pages_zero, want_sum.pages_zero);

  // for_each_run: every covered page exactly once, ascending, same bytes.
  uint64_t pages = 0, prev_end = 0;
  auto r = chain.for_each_run([&](uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages) -> Result<void> {
    EXPECT_GE(addr, prev_end);
    uint64_t n = zero_pages ? zero_pages : data.size() / kPageSize;
    EXPECT_GT(n, 0u);
    for (uint64_t k = 0; k < n; ++k) {
      Expected want = model_page(newest_first, addr + k * kPageSize);
      if (zero_pages) {
        EXPECT_EQ(want.kind, PageSource::Zero);
      } else if (want.bytes) {
        EXPECT_EQ(0, std::memcmp(data.data() + k * kPageSize, want.bytes->data(), kPageSize));
      } else {
        auto page = data.subspan(k * kPageSize, kPageSize);
        EXPECT_TRUE(std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; }));
      }
    }
    pages += n;
    prev_end = addr + n * kPageSize;
    return ok();
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(pages, want_sum.pages_covered);

  // FramesOnce (restore): every covered page exactly once, same bytes; the
  // zero runs first, then the stored ones image by image (never back to an
  // image already left, so no frame is read twice).
  std::set<uint64_t> seen;
  bool stored_started = false;
  size_t last_image = 0;
  r = chain.for_each_run(
      [&](uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages) -> Result<void> {
        uint64_t n = zero_pages ? zero_pages : data.size() / kPageSize;
        EXPECT_GT(n, 0u);
        if (zero_pages) {
          EXPECT_FALSE(stored_started) << "a zero run after stored ones at " << std::hex << addr;
        } else {
          size_t image = chain.source(addr).image;
          if (stored_started) {
            EXPECT_GE(image, last_image) << std::hex << addr;
          }
          stored_started = true;
          last_image = image;
        }
        for (uint64_t k = 0; k < n; ++k) {
          const uint64_t page = addr + k * kPageSize;
          EXPECT_TRUE(seen.insert(page).second) << "page twice: " << std::hex << page;
          Expected want = model_page(newest_first, page);
          if (zero_pages) {
            EXPECT_EQ(want.kind, PageSource::Zero);
          } else if (want.bytes) {
            EXPECT_EQ(0, std::memcmp(data.data() + k * kPageSize, want.bytes->data(), kPageSize));
          } else {
            auto bytes = data.subspan(k * kPageSize, kPageSize);
            EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; }));
          }
        }
        return ok();
      },
      {}, ImageChain::RunOrder::FramesOnce);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(seen.size(), want_sum.pages_covered);
}

// ChainSweep gives resolve()'s answers: every page in ascending order, then
// random addresses (ascending runs, and jumps back).
void check_sweep(const fs::path& dir, std::mt19937_64& rng) {
  auto chain = ResolvedChain::open(dir, {});
  ASSERT_TRUE(chain) << chain.error().message();
  auto same = [&](ChainSweep& sweep, uint64_t addr, uint64_t limit) {
    Span want = chain->resolve(addr, limit), got = sweep.resolve(addr, limit);
    EXPECT_EQ(got.kind, want.kind) << std::hex << addr;
    EXPECT_EQ(got.image, want.image) << std::hex << addr;
    EXPECT_EQ(got.data_page, want.data_page) << std::hex << addr;
    EXPECT_EQ(got.pages, want.pages) << std::hex << addr;
  };
  const uint64_t end = page_addr(kSpacePages + 2);
  ChainSweep forward(*chain);
  for (uint64_t i = 0; i < kSpacePages + 2; ++i) same(forward, page_addr(i), end);
  ChainSweep jumping(*chain);
  for (int k = 0; k < 400; ++k) {
    uint64_t at = rng() % (kSpacePages + 2);
    same(jumping, page_addr(at), page_addr(at + 1 + rng() % 8));
  }
}

TEST(ChainProperty, RandomChainsResolveLikeTheModel) {
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    wpckpt::test::TempDir tmp;
    std::vector<ImageSpec> oldest_first;
    std::vector<MemoryArea> areas;
    uint32_t oldest_frame_pages = 0;
    int images = 1 + static_cast<int>(rng() % 7);
    for (int n = 0; n < images; ++n) {
      areas = random_areas(rng);
      ImageSpec spec;
      WriterOptions options;
      options.frame_pages = static_cast<uint32_t>(1 + rng() % 24);
      options.threads = static_cast<unsigned>(rng() % 3);
      if (n == 0) oldest_frame_pages = options.frame_pages;
      std::optional<fs::path> parent;
      if (n > 0) parent = tmp / std::to_string(n - 1);
      auto w = ImageWriter::create(tmp / std::to_string(n), n + 1 == images ? ImageKind::Dump : ImageKind::PreDump, parent, options);
      ASSERT_TRUE(w) << w.error().message();
      (*w)->set_areas(areas);
      for (const MemoryArea& a : areas) {
        if (!a.contents) continue;
        if (rng() % 3 == 0) {
          uint64_t s = a.start + (rng() % ((a.end - a.start) / kPageSize)) * kPageSize;
          uint64_t e = std::min(a.end, s + (1 + rng() % 8) * kPageSize);
          spec.fresh.emplace_back(s, e);
          ASSERT_TRUE((*w)->add_fresh_range(s, e));
        }
        // Runs of pages: stored (compressible or random), zero data, explicit zero entries.
        for (uint64_t p = a.start; p < a.end;) {
          uint64_t len = std::min((a.end - p) / kPageSize, 1 + rng() % 6);
          int what = static_cast<int>(rng() % 5);
          if (what == 0) {
            std::vector<std::byte> run;
            for (uint64_t k = 0; k < len; ++k) {
              auto page = make_page(seed * 100 + n, p + k * kPageSize, 1 + static_cast<int>(rng() % 2));
              if (rng() % 4 == 0) page.assign(kPageSize, std::byte{0});
              spec.entries[p + k * kPageSize] = page;
              run.insert(run.end(), page.begin(), page.end());
            }
            ASSERT_TRUE((*w)->add_pages(p, run));
          } else if (what == 1) {
            for (uint64_t k = 0; k < len; ++k) spec.entries[p + k * kPageSize] = std::vector<std::byte>(kPageSize);
            ASSERT_TRUE((*w)->add_zero_pages(p, len));
          }
          p += len * kPageSize;
        }
      }
      auto info = (*w)->commit();
      ASSERT_TRUE(info) << info.error().message();
      oldest_first.push_back(std::move(spec));
    }
    std::vector<ImageSpec> newest_first(oldest_first.rbegin(), oldest_first.rend());
    fs::path top = tmp / std::to_string(images - 1);
    check_chain(top, newest_first, areas, true);
    check_sweep(top, rng);
    ASSERT_TRUE(verify_chain(top));
    // A merged image has the same content (its sources are all "here").
    ASSERT_TRUE(merge_chain(top, tmp / "merged", {}));
    check_chain(tmp / "merged", newest_first, areas, false);
    ASSERT_TRUE(verify_chain(tmp / "merged"));
    // At the oldest image's frame size, whose frames the merge may copy as they are.
    WriterOptions same_frames;
    same_frames.frame_pages = oldest_frame_pages;
    ASSERT_TRUE(merge_chain(top, tmp / "merged-same", same_frames));
    check_chain(tmp / "merged-same", newest_first, areas, false);
    ASSERT_TRUE(verify_chain(tmp / "merged-same"));
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace wpckpt::image::test
