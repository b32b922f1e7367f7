// Round trips through ImageWriter and ImageChain: pages, zero pages, fresh
// ranges, chains, extra files, runs, summary, merge.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>

#include "dump-format/image.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/dump-format/image_test_util.hpp"

namespace wpckpt::image::test {
namespace {

constexpr uint64_t kBase = 0x7f0000000000;

std::unique_ptr<ImageWriter> writer_for(const std::filesystem::path& dir, const std::optional<std::filesystem::path>& parent,
                                        ImageKind kind = ImageKind::PreDump, WriterOptions options = {}) {
  auto w = ImageWriter::create(dir, kind, parent, options);
  EXPECT_TRUE(w) << w.error().message();
  return w ? std::move(*w) : nullptr;
}

TEST(ImageRoundTrip, PagesZerosAndExtraFilesComeBack) {
  wpckpt::test::TempDir tmp;
  std::vector<MemoryArea> areas{area(kBase, kBase + 64 * kPageSize), area(kBase + 100 * kPageSize, kBase + 101 * kPageSize, false)};
  Model model;
  auto w = writer_for(tmp / "img", std::nullopt, ImageKind::Dump);
  ASSERT_TRUE(w);
  w->set_areas(areas);
  w->set_metadata("pid", 1234);
  std::vector<std::byte> run;
  for (uint64_t i = 0; i < 40; ++i) {
    auto page = make_page(1, kBase + i * kPageSize, static_cast<int>(i % 3));
    if (i % 3) model[kBase + i * kPageSize] = page;
    run.insert(run.end(), page.begin(), page.end());
  }
  ASSERT_TRUE(w->add_pages(kBase, run));
  ASSERT_TRUE(w->add_zero_pages(kBase + 50 * kPageSize, 4));
  std::string state = R"({"threads":[]})";
  ASSERT_TRUE(w->add_file("process.json", std::as_bytes(std::span(state.data(), state.size()))));
  auto info = w->commit();
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->pages_stored, 26u);
  EXPECT_EQ(info->pages_zero, 14u + 4u);
  EXPECT_EQ(info->bytes_raw, 26u * kPageSize);
  EXPECT_GT(info->bytes_compressed, 0u);

  struct stat st {};
  ASSERT_EQ(0, ::stat((tmp / "img").c_str(), &st));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(0, ::stat((tmp / "img" / "pages.dat").c_str(), &st));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto chain = ImageChain::open(tmp / "img");
  ASSERT_TRUE(chain) << chain.error().message();
  EXPECT_EQ((*chain)->manifest().kind, ImageKind::Dump);
  EXPECT_EQ((*chain)->manifest().metadata["pid"], 1234);
  expect_matches_model(**chain, model, areas);
  auto file = (*chain)->read_file("process.json");
  ASSERT_TRUE(file);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(file->data()), file->size()), state);
  EXPECT_EQ((*chain)->source(kBase + kPageSize).kind, PageSource::Stored);
  EXPECT_EQ((*chain)->source(kBase).kind, PageSource::Zero);
  EXPECT_EQ((*chain)->source(kBase + 100 * kPageSize).kind, PageSource::NotCovered);
  EXPECT_EQ((*chain)->source(kBase + 200 * kPageSize).kind, PageSource::NotCovered);

  // An unaligned read across pages, and reads outside the areas.
  std::vector<std::byte> buf(kPageSize + 100);
  ASSERT_TRUE((*chain)->read(kBase + kPageSize + 7, buf));
  EXPECT_EQ(0, std::memcmp(buf.data(), model[kBase + kPageSize].data() + 7, kPageSize - 7));
  EXPECT_FALSE((*chain)->read(kBase + 63 * kPageSize, buf));
  EXPECT_FALSE((*chain)->read(kBase + 100 * kPageSize, std::span(buf).first(10)));

  ChainSummary sum = (*chain)->summary();
  EXPECT_EQ(sum.pages_covered, 64u);
  EXPECT_EQ(sum.pages_stored, 26u);
  EXPECT_EQ(sum.pages_in_parent, 0u);
  EXPECT_EQ(sum.pages_zero, 38u);

  auto report = verify_chain(tmp / "img");
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->images, 1u);
}

// Pages put where page_room() says and then added (as the page reader does)
// come back like copied ones, zero pages among them included, across
// several batches (1 MiB each) and with rooms cut short.
TEST(ImageRoundTrip, PagesReadIntoTheWritersRoomComeBack) {
  wpckpt::test::TempDir tmp;
  const uint64_t total = 700;  // pages: almost three batches
  std::vector<MemoryArea> areas{area(kBase, kBase + total * kPageSize)};
  Model model;
  auto w = writer_for(tmp / "img", std::nullopt, ImageKind::Dump);
  ASSERT_TRUE(w);
  w->set_areas(areas);
  uint64_t at = 0, rooms = 0;
  while (at < total) {
    uint64_t want = std::min<uint64_t>(1 + (at * 7) % 97, total - at);  // uneven reads
    std::span<std::byte> room = w->page_room(want);
    ASSERT_GE(room.size(), kPageSize);
    ASSERT_LE(room.size(), want * kPageSize);
    ++rooms;
    uint64_t n = room.size() / kPageSize;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t addr = kBase + (at + i) * kPageSize;
      auto page = make_page(3, addr, static_cast<int>((at + i) % 5 == 0 ? 0 : 1 + (at + i) % 2));
      if ((at + i) % 5 != 0) model[addr] = page;
      std::memcpy(room.data() + i * kPageSize, page.data(), kPageSize);
    }
    // Added in two pieces, as a read of two remote ranges is handed out.
    uint64_t first = n / 2;
    if (first > 0) {
      ASSERT_TRUE(w->add_pages(kBase + at * kPageSize, room.first(first * kPageSize)));
    }
    ASSERT_TRUE(w->add_pages(kBase + (at + first) * kPageSize, room.subspan(first * kPageSize)));
    at += n;
  }
  EXPECT_GT(rooms, 10u);
  auto info = w->commit();
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->pages_stored, model.size());
  EXPECT_EQ(info->pages_zero, total - model.size());
  auto chain = ImageChain::open(tmp / "img");
  ASSERT_TRUE(chain) << chain.error().message();
  expect_matches_model(**chain, model, areas);
  ASSERT_TRUE(verify_chain(tmp / "img"));
}

// Pages [kBase, kBase + total pages) written as a capture does: read into
// the room the writer hands out (page_room), then added in place; each page
// recorded in `model`. `after_each` runs after every room added.
struct RoomFill {
  uint64_t largest_room = 0;         // pages
  std::set<uintptr_t> room_pages;    // every distinct page of memory handed out as room
};
void fill_through_rooms(ImageWriter& w, uint64_t total, int seed, Model& model, RoomFill& fill,
                        const std::function<void()>& after_each = {}) {
  for (uint64_t at = 0; at < total;) {
    std::span<std::byte> room = w.page_room(total - at);
    ASSERT_GE(room.size(), kPageSize);
    const uint64_t n = room.size() / kPageSize;
    fill.largest_room = std::max(fill.largest_room, n);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t addr = kBase + (at + i) * kPageSize;
      auto page = make_page(seed, addr, static_cast<int>(1 + (at + i) % 2));
      model[addr] = page;
      std::memcpy(room.data() + i * kPageSize, page.data(), kPageSize);
      fill.room_pages.insert(reinterpret_cast<uintptr_t>(room.data()) + i * kPageSize);
    }
    ASSERT_TRUE(w.add_pages(kBase + at * kPageSize, room));
    at += n;
    if (after_each) after_each();
  }
}

// A pre-dump writer with two workers over one area of `total` pages at kBase.
struct SmallDelta {
  explicit SmallDelta(uint64_t total) : areas{area(kBase, kBase + total * kPageSize)} {
    WriterOptions options;
    options.threads = 2;
    w = writer_for(tmp / "img", std::nullopt, ImageKind::PreDump, options);
    if (w) w->set_areas(areas);
  }
  wpckpt::test::TempDir tmp;
  std::vector<MemoryArea> areas;
  Model model;
  std::unique_ptr<ImageWriter> w;
};

// A delta announced with expect_pages() (and not warmed before a freeze) is
// read into a few small batches filled again and again, not into fresh
// memory for each of its pages (kReuseUpToPages in image_writer.cpp), and
// still comes back exactly; a warmed one keeps its large batches.
TEST(ImageRoundTrip, ASmallDeltaIsReadIntoTheSameFewBatchesAgain) {
  for (bool warmed : {false, true}) {
    SCOPED_TRACE(warmed ? "warmed" : "not warmed");
    const uint64_t total = 900;
    SmallDelta d(total);
    auto& w = d.w;
    ASSERT_TRUE(w);
    if (warmed) w->warm_up(total);
    w->expect_pages(total);
    RoomFill fill;
    ASSERT_NO_FATAL_FAILURE(fill_through_rooms(*w, total, 5, d.model, fill));
    const uint64_t largest_room = fill.largest_room;
    const std::set<uintptr_t>& room_pages = fill.room_pages;
    auto info = w->commit();
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->pages_stored, total);
    if (warmed) {
      EXPECT_EQ(largest_room, 256u);  // its 1 MiB batches
    } else {
      // One batch being filled, two compressing, one queued: 4 x 32 pages.
      EXPECT_LE(largest_room, 32u);
      EXPECT_LE(room_pages.size(), 4u * 32u);
    }
    auto chain = ImageChain::open(d.tmp / "img");
    ASSERT_TRUE(chain) << chain.error().message();
    expect_matches_model(**chain, d.model, d.areas);
  }
}

// A dump warms its writer by the parent's delta, then tops it up by what
// the prefetch found (lib/dump/dump.cpp): warm_up called again with more
// pages adds to the warm slots, with fewer changes nothing, and once pages
// came it is ignored. The image comes back exactly either way.
TEST(ImageRoundTrip, AWriterWarmedTwiceThenLateStillWritesEveryPage) {
  const uint64_t total = 900;
  SmallDelta d(total);
  auto& w = d.w;
  ASSERT_TRUE(w);
  w->warm_up(10);
  w->warm_up(total);  // topped up: the batches are 1 MiB from here
  w->warm_up(5);      // fewer: nothing
  RoomFill fill;
  ASSERT_NO_FATAL_FAILURE(fill_through_rooms(*w, total, 9, d.model, fill, [&] { w->warm_up(4 * total); }));  // after pages: ignored
  const uint64_t largest_room = fill.largest_room;
  auto info = w->commit();
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->pages_stored, total);
  EXPECT_EQ(largest_room, 256u);
  auto chain = ImageChain::open(d.tmp / "img");
  ASSERT_TRUE(chain) << chain.error().message();
  expect_matches_model(**chain, d.model, d.areas);
  ASSERT_TRUE(verify_chain(d.tmp / "img"));
}

TEST(ImageRoundTrip, ANonEmptyDirectoryOrAFileIsNeverOverwritten) {
  wpckpt::test::TempDir tmp;
  std::filesystem::create_directory(tmp / "img");
  std::ofstream(tmp / "img" / "notes") << "keep me";
  auto w = ImageWriter::create(tmp / "img", ImageKind::PreDump, std::nullopt, {});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().err, ENOTEMPTY);
  EXPECT_FALSE(w.error().hint.empty());
  EXPECT_TRUE(std::filesystem::exists(tmp / "img" / "notes"));

  std::ofstream(tmp / "file") << "x";
  auto f = ImageWriter::create(tmp / "file", ImageKind::PreDump, std::nullopt, {});
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().err, EEXIST);

  // A symlink to an empty directory is refused too (rename would replace the link, not the directory).
  std::filesystem::create_directory(tmp / "empty");
  std::filesystem::create_directory_symlink(tmp / "empty", tmp / "link");
  auto l = ImageWriter::create(tmp / "link", ImageKind::PreDump, std::nullopt, {});
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().err, EEXIST);
}

// CRIU's convention: `mkdir -p imgs/1` before the dump. The empty directory
// is replaced by the image (mode 0700, whatever the empty one had).
TEST(ImageRoundTrip, AnEmptyDirectoryIsReplacedByTheImage) {
  wpckpt::test::TempDir tmp;
  std::filesystem::create_directory(tmp / "img");
  ASSERT_EQ(0, ::chmod((tmp / "img").c_str(), 0755));
  auto w = writer_for(tmp / "img", std::nullopt);
  ASSERT_TRUE(w);
  w->set_areas({area(kBase, kBase + 2 * kPageSize)});
  ASSERT_TRUE(w->add_pages(kBase, make_page(7, kBase, 1)));
  // Nothing is visible before the commit: the directory stays empty.
  EXPECT_TRUE(std::filesystem::is_empty(tmp / "img"));
  auto info = w->commit();
  ASSERT_TRUE(info) << info.error().message();
  struct stat st {};
  ASSERT_EQ(0, ::stat((tmp / "img").c_str(), &st));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE(verify_chain(tmp / "img"));

  // A child in another empty directory links to it by a relative path.
  std::filesystem::create_directory(tmp / "img2");
  auto c = writer_for(tmp / "img2", tmp / "img");
  ASSERT_TRUE(c);
  c->set_areas({area(kBase, kBase + 2 * kPageSize)});
  ASSERT_TRUE(c->commit());
  auto chain = ImageChain::open(tmp / "img2");
  ASSERT_TRUE(chain) << chain.error().message();
  EXPECT_EQ((*chain)->manifest().parent, std::optional<std::string>("../img"));
  EXPECT_EQ((*chain)->dirs().size(), 2u);
}

// Someone writes into the empty directory during the dump: the commit fails,
// their file stays, no image appears, no temporary is left.
TEST(ImageRoundTrip, AnEmptyDirectoryFilledDuringTheWriteIsNotReplaced) {
  wpckpt::test::TempDir tmp;
  std::filesystem::create_directory(tmp / "img");
  auto w = writer_for(tmp / "img", std::nullopt);
  ASSERT_TRUE(w);
  w->set_areas({area(kBase, kBase + kPageSize)});
  std::ofstream(tmp / "img" / "late") << "theirs";
  auto info = w->commit();
  ASSERT_FALSE(info);
  EXPECT_TRUE(info.error().err == ENOTEMPTY || info.error().err == EEXIST) << info.error().message();
  w.reset();
  EXPECT_TRUE(std::filesystem::exists(tmp / "img" / "late"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "img" / "manifest.json"));
  for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(ImageRoundTrip, ATrailingSlashNamesTheDirectory) {
  wpckpt::test::TempDir tmp;
  auto w = writer_for((tmp / "img").string() + "/", std::nullopt);
  ASSERT_TRUE(w);
  w->set_areas({area(kBase, kBase + kPageSize)});
  ASSERT_TRUE(w->commit());
  EXPECT_TRUE(ImageChain::open(tmp / "img"));
  EXPECT_TRUE(ImageChain::open((tmp / "img").string() + "/"));
}

TEST(ImageRoundTrip, RunsSpanFramesNotPages) {
  wpckpt::test::TempDir tmp;
  auto w = writer_for(tmp / "img", std::nullopt);
  w->set_areas({area(kBase, kBase + 200 * kPageSize)});
  std::vector<std::byte> run;
  for (uint64_t i = 0; i < 200; ++i) {
    auto page = make_page(4, i, 2);
    run.insert(run.end(), page.begin(), page.end());
  }
  ASSERT_TRUE(w->add_pages(kBase, run));
  ASSERT_TRUE(w->commit());
  auto chain = ImageChain::open(tmp / "img");
  ASSERT_TRUE(chain);
  std::vector<uint64_t> sizes;
  ASSERT_TRUE((*chain)->for_each_run([&](uint64_t, std::span<const std::byte> data, uint64_t) -> Result<void> {
    sizes.push_back(data.size() / kPageSize);
    return ok();
  }));
  // 200 contiguous stored pages (13 frames of 16) come as one run, not per frame.
  ASSERT_EQ(sizes.size(), 1u);
  EXPECT_EQ(sizes[0], 200u);
}

TEST(ImageRoundTrip, UncommittedWriterLeavesNothing) {
  wpckpt::test::TempDir tmp;
  {
    auto w = writer_for(tmp / "img", std::nullopt);
    w->set_areas({area(kBase, kBase + kPageSize)});
    ASSERT_TRUE(w->add_pages(kBase, make_page(2, kBase, 2)));
  }
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

TEST(ImageRoundTrip, ChainResolvesNewestAndFreshRangesCut) {
  wpckpt::test::TempDir tmp;
  std::vector<MemoryArea> areas{area(kBase, kBase + 32 * kPageSize)};
  Model model;
  // Image 0: every page.
  {
    auto w = writer_for(tmp / "0", std::nullopt);
    w->set_areas(areas);
    for (uint64_t i = 0; i < 32; ++i) {
      auto page = make_page(10, kBase + i * kPageSize, 1);
      model[kBase + i * kPageSize] = page;
      ASSERT_TRUE(w->add_pages(kBase + i * kPageSize, page));
    }
    ASSERT_TRUE(w->commit());
  }
  // Image 1: pages 4..7 rewritten, page 8 zeroed, fresh range 20..24 (page 21 stored).
  {
    auto w = writer_for(tmp / "1", tmp / "0");
    w->set_areas(areas);
    for (uint64_t i = 4; i < 8; ++i) {
      auto page = make_page(11, kBase + i * kPageSize, 2);
      model[kBase + i * kPageSize] = page;
      ASSERT_TRUE(w->add_pages(kBase + i * kPageSize, page));
    }
    ASSERT_TRUE(w->add_zero_pages(kBase + 8 * kPageSize, 1));
    model.erase(kBase + 8 * kPageSize);
    auto page = make_page(11, kBase + 21 * kPageSize, 1);
    ASSERT_TRUE(w->add_pages(kBase + 21 * kPageSize, page));
    ASSERT_TRUE(w->add_fresh_range(kBase + 20 * kPageSize, kBase + 24 * kPageSize));
    for (uint64_t i = 20; i < 24; ++i) model.erase(kBase + i * kPageSize);
    model[kBase + 21 * kPageSize] = page;
    auto info = w->commit();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->pages_fresh, 3u);
  }
  auto chain = ImageChain::open(tmp / "1");
  ASSERT_TRUE(chain) << chain.error().message();
  ASSERT_EQ((*chain)->dirs().size(), 2u);
  EXPECT_EQ((*chain)->manifest(0).parent.value(), "../0");
  expect_matches_model(**chain, model, areas);
  EXPECT_EQ((*chain)->source(kBase).image, 1u);
  EXPECT_EQ((*chain)->source(kBase + 4 * kPageSize).image, 0u);

  // for_each_run covers every page once, in order, with the model's bytes.
  uint64_t next = kBase;
  auto r = (*chain)->for_each_run([&](uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages) -> Result<void> {
    EXPECT_EQ(addr, next);
    if (zero_pages) {
      for (uint64_t i = 0; i < zero_pages; ++i) EXPECT_FALSE(model.count(addr + i * kPageSize));
      next += zero_pages * kPageSize;
    } else {
      for (size_t off = 0; off < data.size(); off += kPageSize) {
        EXPECT_EQ(0, std::memcmp(data.data() + off, model.at(addr + off).data(), kPageSize));
      }
      next += data.size();
    }
    return ok();
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(next, kBase + 32 * kPageSize);

  ChainSummary sum = (*chain)->summary();
  EXPECT_EQ(sum.pages_stored, 5u);
  EXPECT_EQ(sum.pages_in_parent, 32u - 4 - 1 - 4);
  EXPECT_EQ(sum.pages_zero, 1u + 3u);

  // Merge: standalone, same content.
  auto merged = merge_chain(tmp / "1", tmp / "m", {});
  ASSERT_TRUE(merged) << merged.error().message();
  auto mchain = ImageChain::open(tmp / "m");
  ASSERT_TRUE(mchain);
  EXPECT_EQ((*mchain)->dirs().size(), 1u);
  EXPECT_FALSE((*mchain)->manifest().parent.has_value());
  expect_matches_model(**mchain, model, areas);
  ASSERT_TRUE(verify_chain(tmp / "m"));
  ASSERT_TRUE(verify_chain(tmp / "1"));
}

TEST(ImageRoundTrip, WriterRefusesOutOfOrderAndOutsideAreas) {
  wpckpt::test::TempDir tmp;
  auto w = writer_for(tmp / "img", std::nullopt);
  w->set_areas({area(kBase, kBase + 4 * kPageSize)});
  ASSERT_TRUE(w->add_pages(kBase + kPageSize, make_page(3, 0, 1)));
  EXPECT_FALSE(w->add_pages(kBase, make_page(3, 0, 1)));
  EXPECT_FALSE(w->add_pages(kBase + 3 * kPageSize + 1, make_page(3, 0, 1)));

  auto w2 = writer_for(tmp / "img2", std::nullopt);
  w2->set_areas({area(kBase, kBase + 4 * kPageSize)});
  ASSERT_TRUE(w2->add_pages(kBase + 8 * kPageSize, make_page(3, 0, 1)));
  EXPECT_FALSE(w2->commit());
  EXPECT_FALSE(std::filesystem::exists(tmp / "img2"));
}

}  // namespace
}  // namespace wpckpt::image::test
