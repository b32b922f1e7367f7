// The trust checks of image_files.hpp and temp_dirs.hpp, and the bound on
// open files: every file of every image of a chain must belong to the chain's
// owner, be writable by nobody else, and be a regular file (no symlink, FIFO);
// a writer's temporary directory is removed once its writer is gone, never
// while it lives; a chain longer than the descriptor limit still reads.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "dump-format/manifest.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/dump-format/image_test_util.hpp"

namespace wpckpt::image::test {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kBase = 0x7f4500000000;

void write_image(const fs::path& dir, const std::optional<fs::path>& parent, uint64_t seed) {
  auto w = ImageWriter::create(dir, parent ? ImageKind::Dump : ImageKind::PreDump, parent, {});
  ASSERT_TRUE(w) << w.error().message();
  (*w)->set_areas({area(kBase, kBase + 64 * kPageSize)});
  for (uint64_t i = seed % 8; i < 64; i += 8) ASSERT_TRUE((*w)->add_pages(kBase + i * kPageSize, make_page(seed, i, 1)));
  std::string state = R"({"seed":)" + std::to_string(seed) + "}";
  ASSERT_TRUE((*w)->add_file("process.json", std::as_bytes(std::span(state.data(), state.size()))));
  ASSERT_TRUE((*w)->commit());
}

// Every reader of the library, as the verbs use them.
struct Refusal {
  bool open = false, verify = false, merge = false;
  std::string message;
};
Refusal readers(const fs::path& top, const fs::path& scratch) {
  Refusal r;
  auto chain = ImageChain::open(top);
  r.open = !chain;
  if (!chain) r.message = chain.error().message();
  auto v = verify_chain(top);
  r.verify = !v;
  if (!v && r.message.empty()) r.message = v.error().message();
  r.merge = !merge_chain(top, scratch, {});
  return r;
}

class Trust : public ::testing::Test {
 protected:
  void SetUp() override {
    write_image(tmp / "base", std::nullopt, 1);
    write_image(tmp / "top", tmp / "base", 2);
    ASSERT_TRUE(verify_chain(top()));
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
  void expect_refused(const std::string& what, const std::string& needle) {
    Refusal r = readers(top(), tmp / ("merged-" + std::to_string(merges_++)));
    EXPECT_TRUE(r.open && r.verify && r.merge) << what << ": open " << r.open << " verify " << r.verify << " merge " << r.merge;
    EXPECT_NE(r.message.find(needle), std::string::npos) << what << ": " << r.message;
  }
  wpckpt::test::TempDir tmp;
  int merges_ = 0;
};

TEST_F(Trust, AFileOfAnotherUserInsideAnImageIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  for (const fs::path& file : every_file()) {
    ASSERT_EQ(0, ::chown(file.c_str(), 12345, 12345));
    expect_refused(file.string() + " owned by 12345", file.string() + ": owned by uid 12345");
    ASSERT_EQ(0, ::chown(file.c_str(), 0, 0));
  }
  // With --allow-other-owner too: one owner for the whole chain.
  ASSERT_EQ(0, ::chown(base().c_str(), 12345, 12345));
  OpenOptions allow;
  allow.allow_other_owner = true;
  auto r = ImageChain::open(top(), allow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("owned by uid 12345, not by the image's owner (uid 0)"), std::string::npos)
      << r.error().message();
}

TEST_F(Trust, FilesAndDirectoriesWritableByOthersAreRefused) {
  for (const fs::path& file : every_file()) {
    for (mode_t mode : {0620, 0602}) {
      ASSERT_EQ(0, ::chmod(file.c_str(), mode));
      expect_refused(file.string() + " mode " + std::to_string(mode), "writable by group or others");
    }
    ASSERT_EQ(0, ::chmod(file.c_str(), 0600));
  }
  // A shared spool directory (1777) as an image directory.
  for (const fs::path& dir : {top(), base()}) {
    ASSERT_EQ(0, ::chmod(dir.c_str(), 01777));
    expect_refused(dir.string() + " 1777", "mode 1777");
    ASSERT_EQ(0, ::chmod(dir.c_str(), 0700));
  }
  EXPECT_TRUE(verify_chain(top()));
}

TEST_F(Trust, SymlinksAndFifosInPlaceOfFilesAreRefused) {
  for (const fs::path& file : every_file()) {
    const fs::path aside = tmp / "aside";
    fs::rename(file, aside);
    fs::create_symlink(aside, file);
    expect_refused(file.string() + " as a symlink", file.string() + ": a symbolic link");
    fs::remove(file);
    // A FIFO nobody writes to: opening it must not block.
    ASSERT_EQ(0, ::mkfifo(file.c_str(), 0600));
    expect_refused(file.string() + " as a FIFO", file.string() + ": not a regular file");
    fs::remove(file);
    fs::rename(aside, file);
  }
  EXPECT_TRUE(verify_chain(top()));
}

// Runs fn in a child process; true when it exits 0.
template <typename Fn>
bool in_child(Fn fn) {
  pid_t pid = ::fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(TempDirs, AnAbandonedTemporaryDirectoryIsRemovedByTheNextWriter) {
  wpckpt::test::TempDir tmp;
  // A writer killed before it committed leaves its temporary directory.
  ASSERT_TRUE(in_child([&] {
    auto w = ImageWriter::create(tmp / "img", ImageKind::PreDump, std::nullopt, {});
    if (!w) return 1;
    (*w)->set_areas({area(kBase, kBase + 4 * kPageSize)});
    if (!(*w)->add_pages(kBase, make_page(1, 0, 2))) return 2;
    ::raise(SIGKILL);
    return 3;
  }) == false);
  auto temps = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(tmp.path()))
      if (e.path().filename().string().rfind(".img.tmp-", 0) == 0) names.push_back(e.path().filename());
    return names;
  };
  ASSERT_EQ(temps().size(), 1u) << "the killed writer left no temporary directory";
  const fs::path abandoned = tmp / temps()[0];

  // A live writer's directory (its lock held, here by us) is left alone.
  ASSERT_TRUE(fs::create_directory(tmp / ".img.tmp-live"));
  ::chmod((tmp / ".img.tmp-live").c_str(), 0700);
  int live = ::open((tmp / ".img.tmp-live").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(live, 0);
  ASSERT_EQ(0, ::flock(live, LOCK_EX));
  // Another user's abandoned directory is not ours to remove.
  bool as_root = ::geteuid() == 0;
  if (as_root) {
    ASSERT_TRUE(fs::create_directory(tmp / ".img.tmp-other"));
    ASSERT_EQ(0, ::chown((tmp / ".img.tmp-other").c_str(), 12345, 12345));
  }
  // A directory holding something our writer never creates stays too.
  ASSERT_TRUE(fs::create_directory(tmp / ".img.tmp-odd"));
  ASSERT_TRUE(fs::create_directory(tmp / ".img.tmp-odd" / "sub"));

  write_image(tmp / "img", std::nullopt, 3);
  EXPECT_FALSE(fs::exists(abandoned)) << abandoned;
  EXPECT_TRUE(fs::exists(tmp / ".img.tmp-live"));
  EXPECT_TRUE(fs::exists(tmp / ".img.tmp-odd" / "sub"));
  if (as_root) {
    EXPECT_TRUE(fs::exists(tmp / ".img.tmp-other"));
  }
  ::close(live);
  EXPECT_TRUE(verify_chain(tmp / "img"));
}

// A chain of 50 images read with a descriptor limit of 32: open, read,
// for_each_run, verify, merge and a writer with the chain as its parent.
TEST(OpenFiles, AChainLongerThanTheDescriptorLimitReads) {
  wpckpt::test::TempDir tmp;
  constexpr int kImages = 50;
  for (int i = 0; i < kImages; ++i) {
    write_image(tmp / std::to_string(i), i ? std::optional(tmp / std::to_string(i - 1)) : std::nullopt, 10 + i);
    if (::testing::Test::HasFatalFailure()) return;
  }
  const fs::path top = tmp / std::to_string(kImages - 1);
  auto count_pages = [](const ImageChain& chain) -> uint64_t {
    uint64_t pages = 0;
    auto r = chain.for_each_run([&](uint64_t, std::span<const std::byte> d, uint64_t z) -> Result<void> {
      pages += z + d.size() / kPageSize;
      return ok();
    });
    return r ? pages : 0;
  };
  auto full = ImageChain::open(top);
  ASSERT_TRUE(full) << full.error().message();
  const uint64_t expected_pages = count_pages(**full);
  ASSERT_EQ(expected_pages, 64u);
  full->reset();

  EXPECT_TRUE(in_child([&] {
    struct rlimit lim {32, 32};
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return 10;
    auto chain = ImageChain::open(top);
    if (!chain) return std::fprintf(stderr, "open: %s\n", chain.error().message().c_str()), 1;
    if (count_pages(**chain) != expected_pages) return 2;
    std::vector<std::byte> all(64 * kPageSize);
    if (auto r = (*chain)->read(kBase, all); !r) return std::fprintf(stderr, "read: %s\n", r.error().message().c_str()), 3;
    if (auto r = verify_chain(top); !r) return std::fprintf(stderr, "verify: %s\n", r.error().message().c_str()), 4;
    if (auto r = merge_chain(top, tmp / "merged", {}); !r) return std::fprintf(stderr, "merge: %s\n", r.error().message().c_str()), 5;
    auto w = ImageWriter::create(tmp / "next", ImageKind::PreDump, top, {});
    if (!w) return std::fprintf(stderr, "writer: %s\n", w.error().message().c_str()), 6;
    (*w)->set_areas({area(kBase, kBase + 64 * kPageSize)});
    if (!(*w)->commit()) return 7;
    return ImageChain::open(tmp / "next") ? 0 : 8;
  }));
  auto merged = ImageChain::open(tmp / "merged");
  ASSERT_TRUE(merged);
  std::vector<std::byte> a(64 * kPageSize), b(64 * kPageSize);
  ASSERT_TRUE((*merged)->read(kBase, a));
  auto again = ImageChain::open(top);
  ASSERT_TRUE(again);
  ASSERT_TRUE((*again)->read(kBase, b));
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size()));
}

}  // namespace
}  // namespace wpckpt::image::test
