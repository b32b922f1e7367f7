// UffdFill against a real child process: pages placed with UFFDIO_COPY into
// its fresh anonymous memory, the rest handed to the /proc/PID/mem writer (a
// page already present, an unregistered part, a mapping that is refused), and
// every byte read back from the child.
#include "lib/restore/uffd_fill.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "lib/base/uapi/process.hpp"
#include "lib/base/uapi/userfaultfd.hpp"

namespace wpckpt::restore {
namespace {

constexpr size_t kPage = 4096, kPages = 64;
constexpr int kChildUffd = 100;

// A child with kPages of fresh anonymous memory, page 5 already written, and
// a userfaultfd at kChildUffd. On 'r' it replaces pages 32..47 with a new
// mapping (one the userfaultfd never registered), on 'p' it makes pages
// 48..63 read-only (a VMA of their own), and answers.
class Child {
 public:
  Child() {
    if (pipe(to_) != 0 || pipe(from_) != 0) return;
    pid_ = fork();
    if (pid_ == 0) run();
    close(to_[0]);
    close(from_[1]);
    if (read(from_[0], &base_, sizeof base_) != sizeof base_) base_ = 0;
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(to_[1]);
    close(from_[0]);
  }
  pid_t pid() const { return pid_; }
  uint64_t base() const { return base_; }
  bool remap_middle() { return ask('r'); }
  bool protect_end() { return ask('p'); }
  UniqueFd uffd() const {
    UniqueFd pidfd(static_cast<int>(syscall(uapi::kNrPidfdOpen, pid_, 0)));
    return UniqueFd(static_cast<int>(syscall(uapi::kNrPidfdGetfd, pidfd.get(), kChildUffd, 0)));
  }
  std::vector<std::byte> read_back() const {
    std::vector<std::byte> out(kPages * kPage);
    iovec local{out.data(), out.size()}, remote{reinterpret_cast<void*>(base_), out.size()};
    if (process_vm_readv(pid_, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(out.size())) out.clear();
    return out;
  }

 private:
  bool ask(char c) { return write(to_[1], &c, 1) == 1 && read(from_[0], &c, 1) == 1; }

  [[noreturn]] void run() {
    close(to_[1]);
    close(from_[0]);
    auto* p = static_cast<char*>(
        mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    int fd = static_cast<int>(syscall(uapi::kNrUserfaultfd, O_CLOEXEC | uapi::kUffdUserModeOnly));
    if (p == MAP_FAILED || fd < 0 || dup2(fd, kChildUffd) < 0) _exit(1);
    p[5 * kPage] = 'x';
    uint64_t base = reinterpret_cast<uint64_t>(p);
    if (write(from_[1], &base, sizeof base) != sizeof base) _exit(1);
    char c;
    while (read(to_[0], &c, 1) == 1) {
      if (c == 'r' && mmap(p + 32 * kPage, 16 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                           -1, 0) == MAP_FAILED)
        _exit(1);
      if (c == 'p' && mprotect(p + 48 * kPage, 16 * kPage, PROT_READ) != 0) _exit(1);
      if (write(from_[1], &c, 1) != 1) _exit(1);
    }
    _exit(0);
  }

  int to_[2] = {-1, -1}, from_[2] = {-1, -1};
  pid_t pid_ = -1;
  uint64_t base_ = 0;
};

std::vector<std::byte> pattern() {
  std::vector<std::byte> data(kPages * kPage);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>((i * 131 + i / kPage) & 0xff);
  return data;
}

state::Mapping anon(uint64_t start, size_t pages) {
  state::Mapping m;
  m.start = start;
  m.end = start + pages * kPage;
  m.prot = PROT_READ | PROT_WRITE;
  m.kind = tracker::MemoryKind::Anon;
  return m;
}

// Places pages [from, to) of `data` at the same pages of the child; returns
// the pages handed to the writer.
std::vector<uint64_t> place(UffdFill& fill, const Child& child, const std::vector<std::byte>& data, uint64_t from = 0,
                            uint64_t to = kPages) {
  std::vector<uint64_t> written;
  int mem = open(("/proc/" + std::to_string(child.pid()) + "/mem").c_str(), O_RDWR | O_CLOEXEC);
  auto write = [&](uint64_t addr, std::span<const std::byte> bytes) -> Result<void> {
    for (uint64_t a = addr; a < addr + bytes.size(); a += kPage) written.push_back((a - child.base()) / kPage);
    if (pwrite(mem, bytes.data(), bytes.size(), static_cast<off_t>(addr)) != static_cast<ssize_t>(bytes.size()))
      return errno_error("pwrite", "/proc/PID/mem");
    return ok();
  };
  auto bytes = std::span(data).subspan(from * kPage, (to - from) * kPage);
  Result<void> r = fill.place(child.base() + from * kPage, bytes, write);
  close(mem);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message());
  return written;
}

std::vector<uint64_t> pages(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (uint64_t p = from; p < to; ++p) out.push_back(p);
  return out;
}

// The fill ended (unregistered): the child holds every byte of `data`.
void expect_all_in(std::unique_ptr<UffdFill>& fill, const Child& child, const std::vector<std::byte>& data) {
  fill.reset();
  EXPECT_EQ(child.read_back(), data);
}

TEST(UffdFill, CopiesRegisteredPagesAndWritesThePresentOneAndTheRest) {
  Child child;
  ASSERT_NE(child.base(), 0u);
  // Pages 0..47 registered; 48..63 are not in the mappings given.
  auto fill = UffdFill::adopt(child.uffd(), child.pid(), {anon(child.base(), 48)});
  ASSERT_TRUE(fill);
  const std::vector<std::byte> data = pattern();
  std::vector<uint64_t> expected{5};
  for (uint64_t p : pages(48, 64)) expected.push_back(p);
  EXPECT_EQ(place(*fill, child, data), expected);
  EXPECT_EQ(fill->pages_copied(), 47u);
  expect_all_in(fill, child, data);
}

TEST(UffdFill, AdjacentMappingsAreCopiedEachInsideItsOwnVma) {
  Child child;
  ASSERT_NE(child.base(), 0u);
  ASSERT_TRUE(child.protect_end());
  state::Mapping end = anon(child.base() + 48 * kPage, 16);
  end.prot = PROT_READ;
  auto fill = UffdFill::adopt(child.uffd(), child.pid(), {anon(child.base(), 48), end});
  ASSERT_TRUE(fill);
  // One run across both: a single UFFDIO_COPY over the VMA boundary would
  // be refused and leave the rest to the writer.
  const std::vector<std::byte> data = pattern();
  EXPECT_EQ(place(*fill, child, data), std::vector<uint64_t>{5});
  EXPECT_EQ(fill->pages_copied(), 63u);
  expect_all_in(fill, child, data);
}

TEST(UffdFill, ARefusedCopyUnregistersAndWritesTheRest) {
  Child child;
  ASSERT_NE(child.base(), 0u);
  auto fill = UffdFill::adopt(child.uffd(), child.pid(), {anon(child.base(), kPages)});
  ASSERT_TRUE(fill);
  const std::vector<std::byte> data = pattern();
  EXPECT_EQ(place(*fill, child, data, 0, 16), std::vector<uint64_t>{5});
  EXPECT_EQ(fill->pages_copied(), 15u);
  // Pages 32..47 become a mapping the userfaultfd never registered: a copy
  // over them is refused (ENOENT), and from then on everything is written.
  ASSERT_TRUE(child.remap_middle());
  EXPECT_EQ(place(*fill, child, data, 16, kPages), pages(16, kPages));
  EXPECT_EQ(fill->pages_copied(), 15u);
  expect_all_in(fill, child, data);
}

TEST(UffdFill, LeavesHugePageMemoryToTheWriter) {
  Child child;
  ASSERT_NE(child.base(), 0u);
  state::Mapping m = anon(child.base(), kPages);
  m.vm_flags = {"rd", "wr", "hg"};  // MADV_HUGEPAGE: a fault there may get a huge page
  auto fill = UffdFill::adopt(child.uffd(), child.pid(), {m});
  ASSERT_TRUE(fill);
  const std::vector<std::byte> data = pattern();
  EXPECT_EQ(place(*fill, child, data), pages(0, kPages));
  EXPECT_EQ(fill->pages_copied(), 0u);
  expect_all_in(fill, child, data);
}

}  // namespace
}  // namespace wpckpt::restore
