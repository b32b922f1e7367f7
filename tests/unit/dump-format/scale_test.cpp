// At scale: a million pages (4 GiB of address space through the writer,
// 512 MiB stored, a quarter million extents) round trip; a chain of 50 images resolves like the model; a writer killed with
// SIGKILL at random moments never leaves an image a reader accepts and never
// harms the parent chain.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <set>

#include "tests/support/test_support.hpp"
#include "tests/unit/dump-format/image_test_util.hpp"

namespace wpckpt::image::test {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kBase = 0x7e0000000000;

// Page i: zero unless i % 8 == 0; otherwise its index and a pattern that
// compresses a little.
void fill_page(uint64_t i, std::byte* out) {
  if (i % 8 != 0) {
    std::memset(out, 0, kPageSize);
    return;
  }
  uint64_t words[kPageSize / 8];
  for (size_t k = 0; k < kPageSize / 8; ++k) words[k] = (k % 8 == 0) ? i * 0x9e3779b97f4a7c15ull + k : (i % 251) * k;
  std::memcpy(out, words, kPageSize);
}

TEST(Scale, AMillionPagesRoundTrip) {
  constexpr uint64_t kPages = 1 << 20;
  constexpr uint64_t kChunk = 256;
  wpckpt::test::TempDir tmp;
  auto w = ImageWriter::create(tmp / "big", ImageKind::Dump, std::nullopt, {});
  ASSERT_TRUE(w);
  (*w)->set_areas({area(kBase, kBase + kPages * kPageSize)});
  std::vector<std::byte> buf(kChunk * kPageSize);
  for (uint64_t i = 0; i < kPages; i += kChunk) {
    for (uint64_t k = 0; k < kChunk; ++k) fill_page(i + k, buf.data() + k * kPageSize);
    ASSERT_TRUE((*w)->add_pages(kBase + i * kPageSize, buf));
  }
  auto info = (*w)->commit();
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->pages_stored, kPages / 8);
  EXPECT_EQ(info->pages_zero, kPages - kPages / 8);
  EXPECT_EQ(info->bytes_raw, kPages / 8 * kPageSize);

  auto chain = ImageChain::open(tmp / "big");
  ASSERT_TRUE(chain) << chain.error().message();
  uint64_t next = 0, mismatches = 0;
  std::vector<std::byte> want(kPageSize);
  auto r = (*chain)->for_each_run([&](uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages) -> Result<void> {
    uint64_t first = (addr - kBase) / kPageSize;
    if (first != next) ++mismatches;
    uint64_t n = zero_pages ? zero_pages : data.size() / kPageSize;
    for (uint64_t k = 0; k < n; ++k) {
      if (zero_pages) {
        mismatches += (first + k) % 8 == 0;
        continue;
      }
      fill_page(first + k, want.data());
      mismatches += std::memcmp(want.data(), data.data() + k * kPageSize, kPageSize) != 0;
    }
    next = first + n;
    return ok();
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(next, kPages);
  EXPECT_EQ(mismatches, 0u);
  ChainSummary sum = (*chain)->summary();
  EXPECT_EQ(sum.pages_stored, kPages / 8);
  EXPECT_EQ(sum.pages_zero, kPages - kPages / 8);
  // Random single pages (the lazy-restore access pattern).
  std::mt19937_64 rng(5);
  std::vector<std::byte> got(kPageSize);
  for (int k = 0; k < 2000; ++k) {
    uint64_t i = rng() % kPages;
    ASSERT_TRUE((*chain)->read(kBase + i * kPageSize, got));
    fill_page(i, want.data());
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), kPageSize)) << "page " << i;
  }
  auto report = verify_chain(tmp / "big");
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->frames_checked, kPages / 8 / kDefaultFramePages);
}

TEST(Scale, AChainOfFiftyImages) {
  constexpr uint64_t kPages = 4096;
  wpckpt::test::TempDir tmp;
  std::mt19937_64 rng(50);
  const std::vector<MemoryArea> areas{area(kBase, kBase + kPages * kPageSize)};
  Model model;
  for (int n = 0; n < 50; ++n) {
    std::optional<fs::path> parent;
    if (n) parent = tmp / std::to_string(n - 1);
    auto w = ImageWriter::create(tmp / std::to_string(n), ImageKind::PreDump, parent, {});
    ASSERT_TRUE(w) << w.error().message();
    (*w)->set_areas(areas);
    if (n % 10 == 5) {  // a re-created range: what is not stored here is zero
      uint64_t s = rng() % (kPages - 64);
      ASSERT_TRUE((*w)->add_fresh_range(kBase + s * kPageSize, kBase + (s + 64) * kPageSize));
      for (uint64_t i = s; i < s + 64; ++i) model.erase(kBase + i * kPageSize);
    }
    std::set<uint64_t> dirty;
    uint64_t count = n == 0 ? kPages : 200;
    for (uint64_t k = 0; k < count; ++k) dirty.insert(n == 0 ? k : rng() % kPages);
    for (uint64_t i : dirty) {
      uint64_t addr = kBase + i * kPageSize;
      if (n && rng() % 10 == 0) {
        ASSERT_TRUE((*w)->add_zero_pages(addr, 1));
        model.erase(addr);
      } else {
        auto page = make_page(n, addr, 1 + static_cast<int>(rng() % 2));
        ASSERT_TRUE((*w)->add_pages(addr, page));
        model[addr] = page;
      }
    }
    ASSERT_TRUE((*w)->commit());
  }
  fs::path top = tmp / "49";
  auto chain = ImageChain::open(top);
  ASSERT_TRUE(chain) << chain.error().message();
  EXPECT_EQ((*chain)->dirs().size(), 50u);
  expect_matches_model(**chain, model, areas);
  ASSERT_TRUE(verify_chain(top));
  ASSERT_TRUE(merge_chain(top, tmp / "merged", {}));
  auto merged = ImageChain::open(tmp / "merged");
  ASSERT_TRUE(merged);
  expect_matches_model(**merged, model, areas);
  EXPECT_EQ((*merged)->summary().pages_stored, model.size());
}

// Writes a 128 MiB image `dir` on top of `parent` and exits: run in a child.
[[noreturn]] void write_big_child(const fs::path& dir, const fs::path& parent) {
  auto w = ImageWriter::create(dir, ImageKind::Dump, parent, {});
  if (!w) _exit(2);
  constexpr uint64_t kPages = 32768;
  (*w)->set_areas({area(kBase, kBase + kPages * kPageSize)});
  std::vector<std::byte> buf(256 * kPageSize);
  for (uint64_t i = 0; i < kPages; i += 256) {
    for (uint64_t k = 0; k < 256; ++k) fill_page((i + k) * 8, buf.data() + k * kPageSize);  // none zero
    if (!(*w)->add_pages(kBase + i * kPageSize, buf)) _exit(3);
  }
  std::string state = "{}";
  if (!(*w)->add_file("process.json", std::as_bytes(std::span(state.data(), state.size())))) _exit(4);
  _exit((*w)->commit() ? 0 : 5);
}

// Kills and reaps the child by pid when the test ends, pass or fail.
struct ForkedChild {
  pid_t pid = -1;
  ~ForkedChild() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return status;
  }
};

TEST(Scale, AWriterKilledAtAnyMomentLeavesNoImageAndAnIntactParent) {
  wpckpt::test::TempDir tmp;
  {
    auto w = ImageWriter::create(tmp / "parent", ImageKind::PreDump, std::nullopt, {});
    ASSERT_TRUE(w);
    (*w)->set_areas({area(kBase, kBase + 65536 * kPageSize)});
    ASSERT_TRUE((*w)->add_pages(kBase, make_page(1, kBase, 2)));
    ASSERT_TRUE((*w)->commit());
  }
  // How long one complete write takes here, to spread the kills over it.
  auto t0 = std::chrono::steady_clock::now();
  {
    ForkedChild child;
    child.pid = ::fork();
    ASSERT_GE(child.pid, 0);
    if (child.pid == 0) write_big_child(tmp / "full", tmp / "parent");
    int status = child.wait();
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  auto full_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(verify_chain(tmp / "full"));

  std::mt19937_64 rng(9);
  int killed_before_commit = 0;
  for (int round = 0; round < 12; ++round) {
    fs::path target = tmp / ("kill" + std::to_string(round));
    ForkedChild child;
    child.pid = ::fork();
    ASSERT_GE(child.pid, 0);
    if (child.pid == 0) write_big_child(target, tmp / "parent");
    ::usleep(static_cast<useconds_t>(rng() % static_cast<uint64_t>(full_us * 11 / 10 + 1)));
    ::kill(child.pid, SIGKILL);
    int status = child.wait();
    bool killed = WIFSIGNALED(status);
    // The parent chain is untouched.
    auto parent = verify_chain(tmp / "parent");
    ASSERT_TRUE(parent) << parent.error().message();
    if (fs::exists(target)) {
      // The kill came after the rename: the image is complete.
      auto r = verify_chain(target);
      EXPECT_TRUE(r) << "round " << round << ": a committed image does not verify: " << r.error().message();
    } else {
      EXPECT_TRUE(killed) << "round " << round << ": the writer exited without an image, status " << status;
      EXPECT_FALSE(ImageChain::open(target));
      EXPECT_FALSE(verify_chain(target));
      ++killed_before_commit;
    }
    // Leftovers are hidden temporaries only; remove them for the next round.
    for (const auto& e : fs::directory_iterator(tmp.path())) {
      std::string name = e.path().filename().string();
      if (name.rfind(".kill", 0) == 0) {
        EXPECT_NE(name.find(".tmp-"), std::string::npos) << name;
        fs::remove_all(e.path());
      }
    }
    fs::remove_all(target);
  }
  EXPECT_GT(killed_before_commit, 0);
}

}  // namespace
}  // namespace wpckpt::image::test
