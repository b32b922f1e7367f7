// merge_chain copies a frame as it is when its pages come out unchanged
// where a frame of the merged image starts, and compresses the rest anew.
// Seen from outside: the merge is written at another zstd level than the
// chain, so a frame whose bytes equal the parent's was copied, and one that
// differs was compressed again.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "dump-format/chain_reader.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/dump-format/image_test_util.hpp"

namespace wpckpt::image::test {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kBase = 0x7f3300000000;
constexpr uint64_t kPages = 645;  // 40 whole frames of 16 and a short one of 5

uint64_t at(uint64_t page) { return kBase + page * kPageSize; }

// The compressed bytes of every frame of the image at `dir`.
std::vector<std::vector<std::byte>> frames_of(const fs::path& dir) {
  auto img = open_image(dir, ::geteuid());
  EXPECT_TRUE(img) << img.error().message();
  std::vector<std::vector<std::byte>> out;
  if (!img) return out;
  wpckpt::UniqueFd fd(::open((*img)->data_path.c_str(), O_RDONLY | O_CLOEXEC));
  for (const FrameEntry& f : (*img)->index.frames) {
    std::vector<std::byte> bytes(f.compressed_size);
    EXPECT_EQ(static_cast<ssize_t>(bytes.size()), ::pread(fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(f.offset)));
    out.push_back(std::move(bytes));
  }
  return out;
}

// A full image of kPages text-like pages at level 1, then a delta of
// `changes` (page -> bytes; all zero = an explicit zero entry), merged at
// level 5. Returns which frames of the merged image are byte for byte the
// parent's, after checking every page of it against the model.
std::vector<bool> merge_and_compare(const wpckpt::test::TempDir& tmp, const std::map<uint64_t, std::vector<std::byte>>& changes) {
  const std::vector<MemoryArea> areas = {area(at(0), at(kPages))};
  Model model;
  WriterOptions level1;
  auto full = ImageWriter::create(tmp / "full", ImageKind::PreDump, std::nullopt, level1);
  EXPECT_TRUE(full);
  (*full)->set_areas(areas);
  std::vector<std::byte> all;
  for (uint64_t p = 0; p < kPages; ++p) {
    model[at(p)] = make_page(7, at(p), 1);
    all.insert(all.end(), model[at(p)].begin(), model[at(p)].end());
  }
  EXPECT_TRUE((*full)->add_pages(at(0), all));
  EXPECT_TRUE((*full)->commit());

  auto delta = ImageWriter::create(tmp / "delta", ImageKind::Dump, tmp / "full", level1);
  EXPECT_TRUE(delta);
  (*delta)->set_areas(areas);
  for (const auto& [page, bytes] : changes) {
    EXPECT_TRUE((*delta)->add_pages(at(page), bytes));
    if (std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; })) model.erase(at(page));
    else model[at(page)] = bytes;
  }
  EXPECT_TRUE((*delta)->commit());

  WriterOptions level5;
  level5.compress_level = 5;
  auto merged = merge_chain(tmp / "delta", tmp / "merged", level5);
  EXPECT_TRUE(merged) << merged.error().message();
  auto chain = ImageChain::open(tmp / "merged");
  EXPECT_TRUE(chain) << chain.error().message();
  if (!chain) return {};
  EXPECT_TRUE((*chain)->manifest().parent == std::nullopt);
  expect_matches_model(**chain, model, areas);
  EXPECT_TRUE(verify_chain(tmp / "merged"));

  std::vector<std::vector<std::byte>> parent = frames_of(tmp / "full"), out = frames_of(tmp / "merged");
  std::vector<bool> same;
  for (size_t k = 0; k < out.size(); ++k) same.push_back(k < parent.size() && out[k] == parent[k]);
  return same;
}

TEST(Merge, FramesADeltaLeavesAloneAreCopiedAsTheyAre) {
  wpckpt::test::TempDir tmp;
  // Pages 37 and 38 (frame 2) and 300 (frame 18) written since the full image.
  std::map<uint64_t, std::vector<std::byte>> changes = {
      {37, make_page(8, at(37), 2)}, {38, make_page(8, at(38), 1)}, {300, make_page(8, at(300), 2)}};
  std::vector<bool> same = merge_and_compare(tmp, changes);
  ASSERT_EQ(same.size(), 41u);
  for (size_t k = 0; k < same.size(); ++k) EXPECT_EQ(same[k], k != 2 && k != 18) << "frame " << k;
}

TEST(Merge, APageDroppedShiftsTheFramesAfterItAndTheyAreCompressedAnew) {
  wpckpt::test::TempDir tmp;
  // Page 37 rewritten (frame 2), page 100 zeroed (frame 6): from page 100 on
  // the stored pages move one place and no later frame of the parent fits.
  std::map<uint64_t, std::vector<std::byte>> changes = {{37, make_page(8, at(37), 2)},
                                                        {100, std::vector<std::byte>(kPageSize)}};
  std::vector<bool> same = merge_and_compare(tmp, changes);
  ASSERT_EQ(same.size(), 41u);  // 644 stored pages: still 41 frames
  for (size_t k = 0; k < same.size(); ++k) EXPECT_EQ(same[k], k < 6 && k != 2) << "frame " << k;
}

TEST(Merge, AWriterRefusesACompressedFrameAwayFromAFrameStartAndPagesAfterAShortOne) {
  wpckpt::test::TempDir tmp;
  auto w = ImageWriter::create(tmp / "img", ImageKind::Dump, std::nullopt, {});
  ASSERT_TRUE(w);
  (*w)->set_areas({area(at(0), at(64))});
  auto page = make_page(3, at(0), 1);
  ASSERT_TRUE((*w)->add_pages(at(0), page));
  const std::byte junk[8] = {};
  ImageWriter::FrameRun run{at(1), 1, false};
  auto r = (*w)->add_compressed_frame(std::span(&run, 1), junk, 1, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EINVAL);

  auto v = ImageWriter::create(tmp / "img2", ImageKind::Dump, std::nullopt, {});
  ASSERT_TRUE(v);
  (*v)->set_areas({area(at(0), at(64))});
  ASSERT_TRUE((*v)->add_compressed_frame(std::span(&run, 1), junk, 1, 0));
  auto after = (*v)->add_pages(at(5), page);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().err, EINVAL);
}

}  // namespace
}  // namespace wpckpt::image::test
