// File locks as this kernel lists them in /proc/self/fdinfo, parsed: locks
// of each kind taken here on a real file, their JSON round trip, and the
// checks on an image's (untrusted) lock records.
#include "lib/fds/file_locks.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace wpckpt::fds {
namespace {

struct TempFile {
  std::string path;
  int fd = -1;
  TempFile() {
    char name[] = "/tmp/wpckpt-locks-XXXXXX";
    fd = ::mkstemp(name);
    path = name;
    EXPECT_EQ(::write(fd, "0123456789abcdefghij0123456789", 30), 30);
  }
  ~TempFile() {
    ::close(fd);
    ::unlink(path.c_str());
  }
};

FdInfo fdinfo_of(int fd) {
  std::string where = "/proc/self/fdinfo/" + std::to_string(fd);
  std::ifstream in(where);
  std::stringstream text;
  text << in.rdbuf();
  return FdInfo::parse(text.str(), where);
}

TEST(FileLocks, ParsesEachKindThisKernelLists) {
  TempFile flocked, posix, ofd;
  ASSERT_EQ(::flock(flocked.fd, LOCK_SH), 0);
  struct flock range{};
  range.l_type = F_WRLCK, range.l_whence = SEEK_SET, range.l_start = 10, range.l_len = 5;
  ASSERT_EQ(::fcntl(posix.fd, F_SETLK, &range), 0);
  struct flock whole{};
  whole.l_type = F_RDLCK, whole.l_whence = SEEK_SET;
  ASSERT_EQ(::fcntl(ofd.fd, F_OFD_SETLK, &whole), 0);

  auto f = parse_fd_locks(fdinfo_of(flocked.fd));
  ASSERT_TRUE(f) << f.error().message();
  ASSERT_EQ(f->size(), 1u);
  EXPECT_EQ((*f)[0].kind, FileLock::Kind::Flock);
  EXPECT_FALSE((*f)[0].write);

  auto p = parse_fd_locks(fdinfo_of(posix.fd));
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_EQ(p->size(), 1u);
  EXPECT_EQ((*p)[0].kind, FileLock::Kind::Posix);
  EXPECT_TRUE((*p)[0].write);
  EXPECT_EQ((*p)[0].start, 10);
  EXPECT_EQ((*p)[0].len, 5);

  auto o = parse_fd_locks(fdinfo_of(ofd.fd));
  ASSERT_TRUE(o) << o.error().message();
  ASSERT_EQ(o->size(), 1u);
  EXPECT_EQ((*o)[0].kind, FileLock::Kind::Ofd);
  EXPECT_EQ((*o)[0].len, 0);  // to EOF

  // The JSON an image carries reads back to the same locks.
  state::FdState rec;
  rec.fd = posix.fd;
  rec.details["locks"] = locks_to_json(*p);
  auto back = locks_from_json(rec);
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].start, 10);
  EXPECT_EQ((*back)[0].len, 5);
}

TEST(FileLocks, ALockOfAnotherDescriptionIsNotListedHere) {
  TempFile t;
  int other = ::open(t.path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(other, 0);
  ASSERT_EQ(::flock(other, LOCK_SH), 0);
  auto here = parse_fd_locks(fdinfo_of(t.fd));
  ASSERT_TRUE(here);
  EXPECT_TRUE(here->empty());
  ::close(other);
}

TEST(FileLocks, ImageRecordsAreChecked) {
  state::FdState rec;
  rec.fd = 3;
  rec.details["locks"] = nlohmann::json::array({{{"kind", "lease"}, {"write", true}, {"start", 0}, {"len", 0}}});
  EXPECT_FALSE(locks_from_json(rec));
  rec.details["locks"] = nlohmann::json::array({{{"kind", "posix"}, {"write", true}, {"start", -1}, {"len", 0}}});
  EXPECT_FALSE(locks_from_json(rec));
  rec.details["locks"] = nlohmann::json::array(
      {{{"kind", "posix"}, {"write", true}, {"start", 1}, {"len", INT64_MAX}}});  // past the largest offset
  EXPECT_FALSE(locks_from_json(rec));
  rec.details["locks"] = "everything";
  EXPECT_FALSE(locks_from_json(rec));
}

}  // namespace
}  // namespace wpckpt::fds
