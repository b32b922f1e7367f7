// Damage of every file kind — bit flips, truncation, missing files, a wrong,
// missing or cyclic parent, unknown versions — is caught by verify_chain
// (naming the file) and refused by readers; nothing crashes.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "dump-format/digest.hpp"
#include "dump-format/manifest.hpp"
#include "dump-format/page_index.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/dump-format/image_test_util.hpp"

namespace wpckpt::image::test {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kBase = 0x7f3400000000;

std::vector<char> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}
void write_all(const fs::path& p, const std::vector<char>& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// "base": 40 pages in 3 frames of 16; "top": a few pages, process.json, parent base.
void write_chain(const fs::path& root) {
  std::vector<MemoryArea> areas{area(kBase, kBase + 64 * kPageSize)};
  {
    auto w = ImageWriter::create(root / "base", ImageKind::PreDump, std::nullopt, {});
    ASSERT_TRUE(w);
    (*w)->set_areas(areas);
    for (uint64_t i = 0; i < 40; ++i) ASSERT_TRUE((*w)->add_pages(kBase + i * kPageSize, make_page(1, i, 1 + i % 2)));
    ASSERT_TRUE((*w)->commit());
  }
  auto w = ImageWriter::create(root / "top", ImageKind::Dump, root / "base", {});
  ASSERT_TRUE(w);
  (*w)->set_areas(areas);
  for (uint64_t i = 50; i < 54; ++i) ASSERT_TRUE((*w)->add_pages(kBase + i * kPageSize, make_page(2, i, 2)));
  std::string state = R"({"registers":[1,2,3]})";
  ASSERT_TRUE((*w)->add_file("process.json", std::as_bytes(std::span(state.data(), state.size()))));
  ASSERT_TRUE((*w)->commit());
}

// A reader refuses the chain: at open, or when it reads pages or files.
bool readers_refuse(const fs::path& dir) {
  auto chain = ImageChain::open(dir);
  if (!chain) return true;
  auto runs = (*chain)->for_each_run([](uint64_t, std::span<const std::byte>, uint64_t) -> Result<void> { return ok(); });
  if (!runs) return true;
  if ((*chain)->manifest().files.size() && !(*chain)->read_file("process.json")) return true;
  std::vector<std::byte> all(64 * kPageSize);
  return !(*chain)->read(kBase, all);
}

// verify fails and names `file`; readers refuse.
void expect_caught(const fs::path& top, const fs::path& file, const std::string& what) {
  auto report = verify_chain(top);
  ASSERT_FALSE(report) << what << ": verify passed";
  EXPECT_NE(report.error().message().find(file.string()), std::string::npos)
      << what << ": error does not name " << file << ": " << report.error().message();
  EXPECT_TRUE(readers_refuse(top)) << what << ": a reader accepted the chain";
}

class Corruption : public ::testing::Test {
 protected:
  void SetUp() override {
    write_chain(tmp.path());
    ASSERT_TRUE(verify_chain(top()));
    ASSERT_FALSE(readers_refuse(top()));
  }
  fs::path top() const { return tmp / "top"; }
  fs::path base() const { return tmp / "base"; }
  std::vector<fs::path> every_file() const {
    std::vector<fs::path> files;
    for (const char* dir : {"top", "base"})
      for (const auto& e : fs::directory_iterator(tmp / dir)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
  }
  wpckpt::test::TempDir tmp;
};

// Changes one byte in place (no truncation, which would make the file
// system flush on close).
void poke(const fs::path& file, size_t pos, char value) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(1, ::pwrite(fd, &value, 1, static_cast<off_t>(pos)));
  ::close(fd);
}

TEST_F(Corruption, EveryBitFlipPositionOfEveryFileIsCaught) {
  for (const fs::path& file : every_file()) {
    const std::vector<char> good = read_all(file);
    // Every byte of small files and headers; a stride through page data.
    size_t stride = good.size() > 4096 ? 97 : 1;
    size_t checked = 0;
    for (size_t pos = 0; pos < good.size(); pos += (pos < 128 ? 1 : stride)) {
      poke(file, pos, static_cast<char>(good[pos] ^ (1 << (pos % 8))));
      expect_caught(top(), file, file.string() + " bit flip at " + std::to_string(pos));
      poke(file, pos, good[pos]);
      ++checked;
      if (HasFailure()) return;
    }
    EXPECT_GT(checked, 10u);
  }
  EXPECT_TRUE(verify_chain(top()));
}

TEST_F(Corruption, TruncationOfEveryFileIsCaught) {
  for (const fs::path& file : every_file()) {
    const std::vector<char> good = read_all(file);
    for (size_t len : {size_t{0}, size_t{1}, good.size() / 2, good.size() - 1}) {
      if (len >= good.size()) continue;
      write_all(file, std::vector<char>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len)));
      expect_caught(top(), file, file.string() + " truncated to " + std::to_string(len));
    }
    // Appended bytes are damage too.
    std::vector<char> longer = good;
    longer.push_back('x');
    write_all(file, longer);
    expect_caught(top(), file, file.string() + " with an extra byte");
    write_all(file, good);
  }
  EXPECT_TRUE(verify_chain(top()));
}

TEST_F(Corruption, MissingFilesAreCaught) {
  for (const fs::path& file : every_file()) {
    fs::rename(file, tmp / "aside");
    expect_caught(top(), file, file.string() + " missing");
    fs::rename(tmp / "aside", file);
  }
  fs::rename(base(), tmp / "aside");
  auto r = verify_chain(top());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_NE(r.error().message().find("parent \"../base\""), std::string::npos) << r.error().message();
  EXPECT_TRUE(readers_refuse(top()));
}

TEST_F(Corruption, AReplacedParentIsCaught) {
  // Another valid image under the parent's name: its digest differs.
  fs::rename(base(), tmp / "old-base");
  auto w = ImageWriter::create(base(), ImageKind::PreDump, std::nullopt, {});
  ASSERT_TRUE(w);
  (*w)->set_areas({area(kBase, kBase + 64 * kPageSize)});
  ASSERT_TRUE((*w)->add_pages(kBase, make_page(9, 0, 2)));
  ASSERT_TRUE((*w)->commit());
  ASSERT_TRUE(verify_chain(base()));
  auto r = verify_chain(top());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("wrong or modified parent"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find((base() / "manifest.json").string()), std::string::npos) << r.error().message();
  EXPECT_TRUE(readers_refuse(top()));
}

// Rewrites a manifest through the library's encoder so its own checksum is
// valid: the damage is in what it says, not in its bytes.
void rewrite_manifest(const fs::path& dir, const std::function<void(ManifestDocument&)>& change) {
  std::vector<char> text = read_all(dir / kManifestName);
  auto doc = parse_manifest(std::as_bytes(std::span(text.data(), text.size())), "m");
  ASSERT_TRUE(doc) << doc.error().message();
  change(*doc);
  std::string out = encode_manifest(*doc);
  write_all(dir / kManifestName, std::vector<char>(out.begin(), out.end()));
}

TEST_F(Corruption, ACycleOfParentsIsCaught) {
  // base names top as its parent, with top's correct digest: top -> base -> top.
  auto digest = digest_file(top() / kManifestName);
  ASSERT_TRUE(digest);
  rewrite_manifest(base(), [&](ManifestDocument& d) {
    d.manifest.parent = "../top";
    d.manifest.parent_digest = digest->hex();
  });
  // top's link to base is now wrong too; relink it so only the cycle remains.
  auto base_digest = digest_file(base() / kManifestName);
  rewrite_manifest(top(), [&](ManifestDocument& d) { d.manifest.parent_digest = base_digest->hex(); });
  auto r = ImageChain::open(top());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("cycle"), std::string::npos) << r.error().message();
  EXPECT_FALSE(verify_chain(top()));
}

TEST_F(Corruption, UnknownVersionsAreRefused) {
  rewrite_manifest(top(), [](ManifestDocument& d) { d.manifest.format_version = 2; });
  auto r = ImageChain::open(top());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("format_version 2 is not supported"), std::string::npos) << r.error().message();

  auto header = encode_index_header(16, 0, 0, 0, 0);
  header[8] = std::byte{2};
  header.resize(kIndexHeaderSize + kIndexTrailerSize);
  auto idx = parse_page_index(header, "pages.idx");
  ASSERT_FALSE(idx);
  EXPECT_NE(idx.error().message().find("version 2 is not supported"), std::string::npos) << idx.error().message();
}

TEST_F(Corruption, ImagesOfAnotherOwnerAreRefusedUnlessAllowed) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  for (const char* dir : {"top", "base"}) {
    ASSERT_EQ(0, ::chown((tmp / dir).c_str(), 12345, 12345));
    for (const auto& e : fs::directory_iterator(tmp / dir)) ASSERT_EQ(0, ::chown(e.path().c_str(), 12345, 12345));
  }
  auto r = ImageChain::open(top());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EPERM);
  EXPECT_NE(r.error().message().find("uid 12345"), std::string::npos);
  EXPECT_FALSE(verify_chain(top()));
  OpenOptions allow;
  allow.allow_other_owner = true;
  auto allowed = ImageChain::open(top(), allow);
  ASSERT_TRUE(allowed) << allowed.error().message();
  EXPECT_EQ((*allowed)->owner(), 12345u);
  EXPECT_TRUE((*allowed)->read_file("process.json"));
}

}  // namespace
}  // namespace wpckpt::image::test
