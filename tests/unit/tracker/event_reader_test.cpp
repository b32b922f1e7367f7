// The event queue against real processes: a child of the test that maps,
// writes, discards and opens files on command, and what the BPF programs
// report about it. Skips (saying why) where BPF is not available.
#include "tracker/events/event_reader.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "tests/support/test_support.hpp"
#include "tracker/events/event_window.hpp"

namespace wpckpt::tracker {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kPages = 64;

// A forked child that obeys one-letter commands and acknowledges each.
class CommandedChild {
 public:
  explicit CommandedChild(char* buf, const std::string& direct_path) {
    int cmd[2], ack[2];
    if (pipe(cmd) != 0 || pipe(ack) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(cmd[1]);
      close(ack[0]);
      char c;
      while (read(cmd[0], &c, 1) == 1) {
        if (c == 'w') {
          for (size_t i = 0; i < kPages; ++i) buf[i * kPage + 8] = static_cast<char>(i + 1);
        } else if (c == 'd') {
          madvise(buf, 4 * kPage, MADV_DONTNEED);
        } else if (c == 'f') {
          madvise(buf + 8 * kPage, 4 * kPage, MADV_FREE);
        } else if (c == 'o') {
          int fd = open(direct_path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
          if (fd >= 0) close(fd);
        }
        if (write(ack[1], &c, 1) != 1) _exit(1);
      }
      _exit(0);
    }
    close(cmd[0]);
    close(ack[1]);
    cmd_ = cmd[1];
    ack_ = ack[0];
  }
  ~CommandedChild() {
    if (cmd_ >= 0) close(cmd_);
    if (ack_ >= 0) close(ack_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  bool run(char c) {
    char got = 0;
    return write(cmd_, &c, 1) == 1 && read(ack_, &got, 1) == 1 && got == c;
  }

 private:
  pid_t pid_ = -1;
  int cmd_ = -1, ack_ = -1;
};

class EventReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    buf_ = static_cast<char*>(mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(buf_, MAP_FAILED);
    memset(buf_, 0, kPages * kPage);
    direct_ = (dir_ / "direct").string();
    std::ofstream(direct_) << std::string(4096, 'x');
    child_ = std::make_unique<CommandedChild>(buf_, direct_);
    ASSERT_GT(child_->pid(), 0);
    auto r = EventReader::start(child_->pid());
    if (!r) GTEST_SKIP() << "event queue unavailable here: " << r.error().message();
    reader_ = std::move(r).value();
  }
  void TearDown() override {
    reader_.reset();
    child_.reset();
    if (buf_ != nullptr && buf_ != MAP_FAILED) munmap(buf_, kPages * kPage);
  }
  uint64_t page(size_t i) const { return reinterpret_cast<uint64_t>(buf_) + i * kPage; }
  static bool covers(const std::vector<AddressRange>& ranges, uint64_t start, uint64_t end) {
    return std::any_of(ranges.begin(), ranges.end(), [&](const AddressRange& r) { return r.start <= start && end <= r.end; });
  }

  test::TempDir dir_;
  std::string direct_;
  char* buf_ = nullptr;
  std::unique_ptr<CommandedChild> child_;
  std::unique_ptr<EventReader> reader_;
};

TEST_F(EventReaderTest, EveryWrittenPageIsNamedOnceAndNothingIsLost) {
  (void)reader_->take_window();
  ASSERT_TRUE(child_->run('w'));
  EventWindow w = reader_->take_window();
  EXPECT_TRUE(w.complete()) << w.incomplete;
  EXPECT_EQ(w.lost, 0u);
  for (size_t i = 0; i < kPages; ++i)
    EXPECT_TRUE(std::binary_search(w.pages.begin(), w.pages.end(), page(i))) << "page " << i << " not named";
  EXPECT_TRUE(std::is_sorted(w.pages.begin(), w.pages.end()));
  EXPECT_EQ(std::adjacent_find(w.pages.begin(), w.pages.end()), w.pages.end()) << "a page named twice";
  EXPECT_GT(w.seconds(), 0.0);
  // Written again without re-protection: no new fault, nothing named.
  ASSERT_TRUE(child_->run('w'));
  EventWindow again = reader_->take_window();
  EXPECT_FALSE(std::binary_search(again.pages.begin(), again.pages.end(), page(0)));
}

TEST_F(EventReaderTest, DiscardsAreRangesAndFreedRangesStayNamed) {
  (void)reader_->take_window();
  ASSERT_TRUE(child_->run('d'));
  ASSERT_TRUE(child_->run('f'));
  EventWindow w = reader_->take_window();
  EXPECT_TRUE(w.complete()) << w.incomplete;
  EXPECT_TRUE(covers(w.ranges, page(0), page(4)));
  EXPECT_TRUE(covers(w.ranges, page(8), page(12)));
  EXPECT_GE(w.changes, 2u);
  // MADV_FREE pages may be discarded at any later time: named again.
  EventWindow next = reader_->take_window();
  EXPECT_TRUE(covers(next.ranges, page(8), page(12)));
  EXPECT_FALSE(covers(next.ranges, page(0), page(4)));
  std::vector<AddressRange> scan = ranges_to_scan(next, w);
  EXPECT_TRUE(covers(scan, page(0), page(4))) << "the previous window's ranges are scanned too";
}

TEST_F(EventReaderTest, AWriterFromOutsideMakesTheWindowIncomplete) {
  (void)reader_->take_window();
  pid_t target = child_->pid();
  uint64_t where = page(20);
  pid_t writer = fork();
  if (writer == 0) {
    char data[16] = "from outside";
    iovec local{data, sizeof data}, remote{reinterpret_cast<void*>(where), sizeof data};
    _exit(process_vm_writev(target, &local, 1, &remote, 1, 0) == sizeof data ? 0 : 1);
  }
  ASSERT_GT(writer, 0);
  int status = 0;
  ASSERT_EQ(waitpid(writer, &status, 0), writer);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EventWindow w = reader_->take_window();
  EXPECT_FALSE(w.complete());
  EXPECT_NE(w.incomplete.find(std::to_string(writer)), std::string::npos) << w.incomplete;
  // Not sticky: the next window is complete again.
  EXPECT_TRUE(reader_->take_window().complete());
}

TEST_F(EventReaderTest, DirectIoMakesEveryLaterWindowIncomplete) {
  int probe = open(direct_.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (probe < 0) GTEST_SKIP() << "the test directory's file system refuses O_DIRECT";
  close(probe);
  (void)reader_->take_window();
  ASSERT_TRUE(child_->run('o'));
  EventWindow w = reader_->take_window();
  EXPECT_NE(w.incomplete.find("O_DIRECT"), std::string::npos) << w.incomplete;
  EXPECT_FALSE(reader_->take_window().complete());
}

TEST(EventWindow, MergeJoinsOverlapsAndShortGaps) {
  std::vector<AddressRange> r = merge_ranges({{0x5000, 0x6000}, {0x1000, 0x2000}, {0x1800, 0x3000}}, 0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].start, 0x1000u);
  EXPECT_EQ(r[0].end, 0x3000u);
  r = merge_ranges({{0x5000, 0x6000}, {0x1000, 0x3000}}, 0x2000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].end, 0x6000u);
}

}  // namespace
}  // namespace wpckpt::tracker
