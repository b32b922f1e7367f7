// wpckpt show / verify / merge / cat against images written through the
// library: text and --json output, exit codes, errors naming the problem.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "dump-format/image.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/dump-format/image_test_util.hpp"

namespace wpckpt::image::test {
namespace {

using wpckpt::test::run_wpckpt;
using wpckpt::test::TempDir;

constexpr uint64_t kBase = 0x7f1200000000;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Two images: "0" with pages 0..15 (page 3 zero), "1" rewriting pages 4..5.
struct TwoImages {
  TempDir tmp;
  Model model;
  std::vector<MemoryArea> areas{area(kBase, kBase + 16 * kPageSize), area(kBase + 32 * kPageSize, kBase + 33 * kPageSize, false)};

  TwoImages() {
    write(tmp / "0", std::nullopt, 0, 16, 1);
    write(tmp / "1", tmp / "0", 4, 6, 2);
  }
  void write(const std::filesystem::path& dir, const std::optional<std::filesystem::path>& parent, uint64_t from, uint64_t to,
             uint64_t seed) {
    auto w = ImageWriter::create(dir, parent ? ImageKind::Dump : ImageKind::PreDump, parent, {});
    ASSERT_TRUE(w) << w.error().message();
    (*w)->set_areas(areas);
    for (uint64_t i = from; i < to; ++i) {
      auto page = make_page(seed, i, i == 3 ? 0 : 2);
      if (i == 3) model.erase(kBase + i * kPageSize);
      else model[kBase + i * kPageSize] = page;
      ASSERT_TRUE((*w)->add_pages(kBase + i * kPageSize, page));
    }
    if (parent) {
      std::string state = "{}";
      ASSERT_TRUE((*w)->add_file("process.json", std::as_bytes(std::span(state.data(), state.size()))));
    }
    ASSERT_TRUE((*w)->commit());
  }
};

TEST(ImageCli, ShowPrintsChainAreasAndCounts) {
  TwoImages t;
  auto r = run_wpckpt({"show", "-D", (t.tmp / "1").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kind:    dump"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chain:   2 images"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("16 covered: 2 stored here, 13 in parents, 1 zero"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("process.json"), std::string::npos) << r.out;

  auto j = run_wpckpt({"show", "-D", (t.tmp / "1").string(), "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["kind"], "dump");
  EXPECT_EQ(doc["chain"].size(), 2u);
  EXPECT_EQ(doc["chain"][1]["kind"], "pre-dump");
  EXPECT_EQ(doc["chain"][0]["parent"], "../0");
  EXPECT_EQ(doc["pages"]["stored"], 2);
  EXPECT_EQ(doc["pages"]["in_parent"], 13);
  EXPECT_EQ(doc["pages"]["zero"], 1);
  EXPECT_EQ(doc["areas"][0]["start"], hex(kBase));
  EXPECT_EQ(doc["areas"][1]["contents"], false);
  EXPECT_GT(doc["bytes"]["compressed"].get<uint64_t>(), 0u);
}

TEST(ImageCli, CatResolvesThroughTheChain) {
  TwoImages t;
  // Pages 2..6: parent, zero, child, child, parent; unaligned start and end.
  uint64_t addr = kBase + 2 * kPageSize + 100, len = 4 * kPageSize + 50;
  auto r = run_wpckpt({"cat", "-D", (t.tmp / "1").string(), "--addr", hex(addr), "--len", std::to_string(len)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out.size(), len);
  std::vector<std::byte> zero(kPageSize);
  for (uint64_t off = 0; off < len; ++off) {
    uint64_t a = addr + off, page = a - a % kPageSize;
    auto it = t.model.find(page);
    std::byte want = it == t.model.end() ? std::byte{0} : it->second[a - page];
    ASSERT_EQ(static_cast<std::byte>(r.out[off]), want) << "offset " << off;
  }
  auto j = run_wpckpt({"cat", "-D", (t.tmp / "1").string(), "--addr", std::to_string(kBase), "--len", "4", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_EQ(nlohmann::json::parse(j.out)["hex"].get<std::string>().size(), 8u);

  // Not covered (past the area, and an area without contents): exit 1, nothing printed.
  auto bad = run_wpckpt({"cat", "-D", (t.tmp / "1").string(), "--addr", hex(kBase + 15 * kPageSize), "--len", "8192"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(bad.out.empty());
  EXPECT_NE(bad.err.find("not covered"), std::string::npos) << bad.err;
  EXPECT_EQ(run_wpckpt({"cat", "-D", (t.tmp / "1").string(), "--addr", hex(kBase + 32 * kPageSize), "--len", "1"}).exit_code, 1);
  EXPECT_EQ(run_wpckpt({"cat", "-D", (t.tmp / "1").string(), "--addr", "nonsense", "--len", "1"}).exit_code, 2);
}

TEST(ImageCli, VerifyPassesThenNamesTheDamagedFile) {
  TwoImages t;
  auto ok = run_wpckpt({"verify", "-D", (t.tmp / "1").string()});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("ok: 2 images"), std::string::npos) << ok.out;
  auto j = run_wpckpt({"verify", "-D", (t.tmp / "1").string(), "--json"});
  ASSERT_EQ(j.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(j.out)["images"], 2);

  // Flip a bit in the parent's last frame.
  std::filesystem::path data = t.tmp / "0" / "pages.dat";
  {
    std::fstream f(data, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-5, std::ios::end);
    char c;
    f.get(c);
    f.seekp(-5, std::ios::end);
    f.put(static_cast<char>(c ^ 0x10));
  }
  auto bad = run_wpckpt({"verify", "-D", (t.tmp / "1").string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find(data.string()), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("checksum mismatch"), std::string::npos) << bad.err;
  auto bj = run_wpckpt({"verify", "-D", (t.tmp / "1").string(), "--json"});
  EXPECT_EQ(bj.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(bj.out)["ok"], false);
}

TEST(ImageCli, MergeMakesAStandaloneImageWithTheSameBytes) {
  TwoImages t;
  auto r = run_wpckpt({"merge", "-D", (t.tmp / "1").string(), "-o", (t.tmp / "m").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["pages_stored"], 15);
  auto show = run_wpckpt({"show", "-D", (t.tmp / "m").string(), "--json"});
  auto doc = nlohmann::json::parse(show.out);
  EXPECT_EQ(doc["chain"].size(), 1u);
  EXPECT_EQ(doc["kind"], "dump");
  EXPECT_EQ(doc["files"][0], "process.json");
  std::string range = std::to_string(16 * kPageSize);
  auto a = run_wpckpt({"cat", "-D", (t.tmp / "1").string(), "--addr", hex(kBase), "--len", range});
  auto b = run_wpckpt({"cat", "-D", (t.tmp / "m").string(), "--addr", hex(kBase), "--len", range});
  ASSERT_EQ(a.exit_code, 0);
  ASSERT_EQ(b.exit_code, 0);
  EXPECT_TRUE(a.out == b.out);
  EXPECT_EQ(run_wpckpt({"verify", "-D", (t.tmp / "m").string()}).exit_code, 0);
  // An existing output is never overwritten.
  auto again = run_wpckpt({"merge", "-D", (t.tmp / "1").string(), "-o", (t.tmp / "m").string()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("Directory not empty"), std::string::npos) << again.err;
  // An empty output directory (CRIU's habit of creating -D first) is fine.
  std::filesystem::create_directory(t.tmp / "m2");
  auto into_empty = run_wpckpt({"merge", "-D", (t.tmp / "1").string(), "-o", (t.tmp / "m2").string()});
  EXPECT_EQ(into_empty.exit_code, 0) << into_empty.err;
  EXPECT_EQ(run_wpckpt({"verify", "-D", (t.tmp / "m2").string()}).exit_code, 0);
}

TEST(ImageCli, MissingImageIsAnErrorWithAHint) {
  TempDir tmp;
  auto r = run_wpckpt({"show", "-D", (tmp / "nope").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("wpckpt: error:"), std::string::npos);
  std::filesystem::create_directory(tmp / "empty");
  auto e = run_wpckpt({"verify", "-D", (tmp / "empty").string()});
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_NE(e.err.find("manifest.json"), std::string::npos) << e.err;
  EXPECT_NE(e.err.find("hint:"), std::string::npos) << e.err;
}

}  // namespace
}  // namespace wpckpt::image::test
