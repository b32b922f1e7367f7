// The local sink, by default with direct_io: a large stream (its bulk
// written with O_DIRECT from the sink's own buffers) comes back byte for
// byte, whatever the sizes of the appends, and leaves that bulk out of the
// page cache; without direct_io (--buffered-io) the bulk stays cached.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "dump-format/image_sink.hpp"
#include "lib/base/unique_fd.hpp"
#include "tests/support/test_support.hpp"

namespace wpckpt::image::test {
namespace {

std::vector<std::byte> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng());
  return out;
}

// Pages of `path` in the page cache, over [from, to).
size_t resident_pages(const std::filesystem::path& path, size_t from, size_t to) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return SIZE_MAX;
  void* p = ::mmap(nullptr, to, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return SIZE_MAX;
  std::vector<unsigned char> in_core((to + 4095) / 4096);
  size_t n = ::mincore(p, to, in_core.data()) == 0 ? 0 : SIZE_MAX;
  for (size_t i = from / 4096; n != SIZE_MAX && i < in_core.size(); ++i) n += in_core[i] & 1;
  ::munmap(p, to);
  return n;
}

bool file_system_takes_o_direct(const std::filesystem::path& dir) {
  const auto probe = dir / "o_direct_probe";
  UniqueFd fd(::open(probe.c_str(), O_CREAT | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600));
  ::unlink(probe.c_str());
  return static_cast<bool>(fd);
}

TEST(LocalSink, ALargeStreamComesBackWholeAndItsBulkBypassesThePageCache) {
  wpckpt::test::TempDir tmp;
  auto sink = make_local_sink(tmp / "img");  // the default
  ASSERT_TRUE(sink) << sink.error().message();
  // 21 MiB and a bit in appends of uneven sizes, as compressed frames come.
  const auto data = random_bytes((21u << 20) + 777, 7);
  std::mt19937 rng(11);
  for (size_t at = 0; at < data.size();) {
    size_t n = std::min<size_t>(data.size() - at, 1 + rng() % (700u << 10));
    ASSERT_TRUE((*sink)->append("pages.dat", std::span(data).subspan(at, n)));
    at += n;
  }
  ASSERT_TRUE((*sink)->end_stream("pages.dat"));
  const std::string small = "{}";
  ASSERT_TRUE((*sink)->write_file("manifest.json", std::as_bytes(std::span(small.data(), small.size()))));
  ASSERT_TRUE((*sink)->commit());

  const auto path = tmp / "img" / "pages.dat";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  ASSERT_EQ(static_cast<size_t>(st.st_size), data.size());
  if (file_system_takes_o_direct(tmp.path())) {
    // Past the first 8 MiB whole blocks went around the page cache (before
    // anything reads the file back): of the 12 MiB from 9 MiB on, none is
    // resident; the part written through the cache is.
    EXPECT_EQ(resident_pages(path, 9u << 20, 21u << 20), 0u);
    EXPECT_GT(resident_pages(path, 0, 4u << 20), 0u);
  }
  std::string back = wpckpt::test::read_file(path.string());
  ASSERT_EQ(back.size(), data.size());
  EXPECT_EQ(std::memcmp(back.data(), data.data(), data.size()), 0) << "the stream came back different";
}

TEST(LocalSink, WithoutDirectIoTheBulkGoesThroughThePageCache) {
  wpckpt::test::TempDir tmp;
  auto sink = make_local_sink(tmp / "img", {}, false);
  ASSERT_TRUE(sink) << sink.error().message();
  const auto data = random_bytes(16u << 20, 9);
  for (size_t at = 0; at < data.size(); at += 1u << 20)
    ASSERT_TRUE((*sink)->append("pages.dat", std::span(data).subspan(at, 1u << 20)));
  ASSERT_TRUE((*sink)->end_stream("pages.dat"));
  ASSERT_TRUE((*sink)->commit());
  const auto path = tmp / "img" / "pages.dat";
  EXPECT_GT(resident_pages(path, 9u << 20, 16u << 20), 0u) << "the bulk went around the page cache";
  std::string back = wpckpt::test::read_file(path.string());
  ASSERT_EQ(back.size(), data.size());
  EXPECT_EQ(std::memcmp(back.data(), data.data(), data.size()), 0) << "the stream came back different";
}

}  // namespace
}  // namespace wpckpt::image::test
