// The new process of a restore: the wanted pid, descriptors at their numbers
// with their offsets and flags, unread pipe data back, nothing else open.
#include "lib/restore/spawn.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>


#include "lib/restore/validate.hpp"
#include "tests/support/test_support.hpp"

namespace wpckpt::restore {
namespace {

Result<std::vector<std::byte>> no_files(const std::string& name) { return make_error(ENOENT, "read", name); }

// A pid half the ring away from the kernel's allocation cursor (ns_last_pid): the
// tests running beside this one take their pids next to the cursor, so none of
// them takes this one between the check and the clone (a pid near getpid() was
// taken that way once pid_max had wrapped).
int free_pid() {
  constexpr int kFirstPidAfterWrap = 301;  // RESERVED_PIDS + 1
  int pid_max = std::stoi(test::read_file("/proc/sys/kernel/pid_max"));
  int cursor = std::stoi(test::read_file("/proc/sys/kernel/ns_last_pid"));
  int span = pid_max - kFirstPidAfterWrap;
  for (int step = 0; step < span; ++step) {
    int pid = kFirstPidAfterWrap + (cursor - kFirstPidAfterWrap + span / 2 + step) % span;
    struct stat st{};
    if (::stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0) return pid;
  }
  ADD_FAILURE() << "no free pid below pid_max " << pid_max;
  return -1;
}

state::FileIdentity identity_of(const std::string& path) {
  state::FileIdentity id{path};
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) {
    id.dev = st.st_dev;
    id.inode = st.st_ino;
    id.size = static_cast<uint64_t>(st.st_size);
    id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  }
  return id;
}

std::string fdinfo_field(int pid, int fd, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return line.substr(key.size() + 1);
  return "";
}

TEST(CloneWithPid, GetsTheWantedPidAndRefusesOneInUse) {
  int want = free_pid();
  auto r = clone_with_pid(want);
  ASSERT_TRUE(r.ok()) << r.error().message();
  if (*r == 0) _exit(7);
  EXPECT_EQ(*r, want);
  int status = 0;
  ASSERT_EQ(waitpid(want, &status, 0), want);
  EXPECT_EQ(WEXITSTATUS(status), 7);

  auto busy = clone_with_pid(getpid());
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().err, EEXIST);
}

TEST(CheckIdsFree, NamesTheProcessHoldingThePid) {
  state::ProcessState s;
  s.pid = getpid();
  s.threads.push_back({});
  auto r = check_ids_free(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find(std::to_string(getpid())), std::string::npos);
  EXPECT_NE(r.error().message().find("in use by"), std::string::npos);
}

TEST(SpawnRestored, RebuildsDescriptors) {
  test::TempDir dir;
  std::string file = dir / "data.txt";
  { std::ofstream(file) << "0123456789abcdef"; }

  state::ProcessState s;
  s.pid = free_pid();
  s.cwd = dir.path();
  s.umask = 027;
  state::FdState f;
  f.fd = 5;
  f.kind = state::FdKind::File;
  f.flags = O_RDWR | O_CREAT | O_TRUNC | O_APPEND;
  f.pos = 7;
  f.object_id = 1;
  f.file = identity_of(file);
  s.fds.push_back(f);
  f.fd = 9;  // a dup of the same description
  f.cloexec = true;
  s.fds.push_back(f);
  state::FdState rd;
  rd.fd = 3;
  rd.kind = state::FdKind::Pipe;
  rd.flags = O_RDONLY;
  rd.object_id = 2;
  rd.details["data"] = state::to_hex(std::vector<uint8_t>{'u', 'n', 'r', 'e', 'a', 'd'});
  s.fds.push_back(rd);
  state::FdState wr = rd;
  wr.fd = 4;
  wr.flags = O_WRONLY;
  wr.details = nlohmann::json::object();
  s.fds.push_back(wr);
  state::FdState ev;
  ev.fd = 12;
  ev.kind = state::FdKind::Eventfd;
  ev.object_id = 3;
  ev.details["count"] = 42;
  s.fds.push_back(ev);

  ChildPlan plan;
  plan.pid = s.pid;
  plan.cwd = s.cwd;
  plan.umask = s.umask;
  ASSERT_TRUE(plan_fds(s, plan, no_files).ok());
  std::vector<UniqueFd> held;
  auto opened = open_fd_files(plan, held);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  auto spawned = spawn_restored(plan, false);
  held.clear();
  ASSERT_TRUE(spawned.ok()) << spawned.error().message();
  SpawnedProcess proc = std::move(spawned).value();
  EXPECT_EQ(proc.pid, s.pid);
  std::string base = "/proc/" + std::to_string(proc.pid);

  EXPECT_EQ(test::read_file(file), "0123456789abcdef");  // O_TRUNC was not applied again
  EXPECT_EQ(std::filesystem::read_symlink(base + "/fd/5"), file);
  EXPECT_EQ(std::stoi(fdinfo_field(proc.pid, 5, "pos")), 7);
  int flags5 = std::stoi(fdinfo_field(proc.pid, 5, "flags"), nullptr, 8);
  EXPECT_TRUE(flags5 & O_APPEND);
  EXPECT_FALSE(flags5 & O_CLOEXEC);
  EXPECT_TRUE(std::stoi(fdinfo_field(proc.pid, 9, "flags"), nullptr, 8) & O_CLOEXEC);
  EXPECT_EQ(fdinfo_field(proc.pid, 5, "ino"), fdinfo_field(proc.pid, 9, "ino"));
  EXPECT_EQ(std::filesystem::read_symlink(base + "/fd/3"), std::filesystem::read_symlink(base + "/fd/4"));
  EXPECT_NE(fdinfo_field(proc.pid, 12, "eventfd-count").find("2a"), std::string::npos);
  EXPECT_EQ(std::filesystem::read_symlink(base + "/cwd"), dir.path());

  int fds = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(base + "/fd")) ++fds;
  EXPECT_EQ(fds, 5 + 2);  // the five and the two sync pipes (closed later by injection)

  // The unread data is in the pipe: read it through the restored read end.
  int p = open((base + "/fd/3").c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(p, 0);
  char buf[16] = {};
  EXPECT_EQ(read(p, buf, sizeof buf), 6);
  EXPECT_STREQ(buf, "unread");
  close(p);
  kill_spawned(proc);
}

TEST(SpawnRestored, ReportsWhatFailedInTheChild) {
  state::ProcessState s;
  s.pid = free_pid();
  ChildPlan plan;
  plan.pid = s.pid;
  plan.cwd = "/nonexistent/wpckpt-test";
  ASSERT_TRUE(plan_fds(s, plan, no_files).ok());
  auto spawned = spawn_restored(plan, false);
  ASSERT_FALSE(spawned.ok());
  EXPECT_EQ(spawned.error().err, ENOENT);
  EXPECT_NE(spawned.error().message().find("chdir"), std::string::npos) << spawned.error().message();
  struct stat st{};
  EXPECT_NE(::stat(("/proc/" + std::to_string(s.pid)).c_str(), &st), 0);  // nothing left behind
}

// One recorded descriptor of `kind` on `path`, planned and opened as restore does.
Result<void> open_one(state::FdKind kind, int flags, const state::FileIdentity& id,
                      const nlohmann::json& details = nlohmann::json::object()) {
  state::ProcessState s;
  s.pid = free_pid();
  state::FdState f;
  f.fd = 4;
  f.kind = kind;
  f.flags = flags;
  f.object_id = 1;
  f.file = id;
  f.details = details;
  s.fds.push_back(f);
  ChildPlan plan;
  WPCKPT_TRY(plan_fds(s, plan, no_files));
  std::vector<UniqueFd> held;
  return open_fd_files(plan, held);
}

TEST(OpenFdFiles, AMissingFileIsNamedWithItsDescriptor) {
  auto r = open_one(state::FdKind::File, O_RDONLY, state::FileIdentity{"/nonexistent/wpckpt-test"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_NE(r.error().message().find("fd 4"), std::string::npos) << r.error().message();
}

TEST(OpenFdFiles, AFileReplacedByAFifoIsRefusedWithoutBlocking) {
  test::TempDir dir;
  std::string path = dir / "log";
  { std::ofstream(path) << "log line\n"; }
  state::FileIdentity id = identity_of(path);
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  for (int flags : {O_WRONLY | O_APPEND, O_RDONLY, O_RDWR}) {  // O_WRONLY would block in open(2) forever
    auto r = open_one(state::FdKind::File, flags, id);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("fd 4"), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find(path + " is now a FIFO, it was a regular file"), std::string::npos)
        << r.error().message();
  }
}

TEST(OpenFdFiles, AReplacedFileIsRefusedAndAGrownOneIsNot) {
  test::TempDir dir;
  std::string path = dir / "data";
  { std::ofstream(path) << "original"; }
  state::FileIdentity id = identity_of(path);
  { std::ofstream(path, std::ios::app) << " and more"; }  // the same file, grown (a log): fine
  EXPECT_TRUE(open_one(state::FdKind::File, O_RDWR, id).ok());
  std::string other = dir / "other";
  { std::ofstream(other) << "another file"; }
  ASSERT_EQ(::rename(other.c_str(), path.c_str()), 0);
  auto r = open_one(state::FdKind::File, O_RDWR, id);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("fd 4: " + path + " is not the file it had at the dump"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(r.error().hint.find("already named another file"), std::string::npos) << r.error().hint;
  // The dump saw the path name another file already (details.replaced): the hint says so.
  r = open_one(state::FdKind::File, O_RDWR, id, {{"replaced", true}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().hint.find("at the dump the path already named another file"), std::string::npos)
      << r.error().hint;
}

TEST(OpenFdFiles, ASymlinkInPlaceOfTheFileIsRefused) {
  test::TempDir dir;
  std::string path = dir / "data";
  { std::ofstream(path) << "original"; }
  state::FileIdentity id = identity_of(path);
  std::string moved = dir / "moved";
  ASSERT_EQ(::rename(path.c_str(), moved.c_str()), 0);
  ASSERT_EQ(::symlink(moved.c_str(), path.c_str()), 0);  // same inode behind it, but not by the recorded path
  auto r = open_one(state::FdKind::File, O_RDONLY, id);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("is now a symbolic link"), std::string::npos) << r.error().message();
}

TEST(SpawnRestored, MemfdContentsAndSealsAreBack) {
  state::ProcessState s;
  s.pid = free_pid();
  state::FdState m;
  m.fd = 6;
  m.kind = state::FdKind::Memfd;
  m.flags = O_RDWR;
  m.pos = 3;
  m.object_id = 1;
  m.details["name"] = "sealed";
  m.details["contents_file"] = "memfd-1.bin";
  m.details["seals"] = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
  s.fds.push_back(m);
  auto files = [](const std::string& name) -> Result<std::vector<std::byte>> {
    if (name != "memfd-1.bin") return make_error(ENOENT, "read", name);
    std::string text = "sealed contents";
    return std::vector<std::byte>(reinterpret_cast<const std::byte*>(text.data()),
                                  reinterpret_cast<const std::byte*>(text.data()) + text.size());
  };
  ChildPlan plan;
  plan.pid = s.pid;
  ASSERT_TRUE(plan_fds(s, plan, files).ok());
  auto spawned = spawn_restored(plan, false);
  ASSERT_TRUE(spawned.ok()) << spawned.error().message();
  SpawnedProcess proc = std::move(spawned).value();
  std::string fd_path = "/proc/" + std::to_string(proc.pid) + "/fd/6";
  EXPECT_EQ(std::filesystem::read_symlink(fd_path).string(), "/memfd:sealed (deleted)");
  EXPECT_EQ(fdinfo_field(proc.pid, 6, "pos").find("3") != std::string::npos, true);
  int fd = ::open(fd_path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  char buf[32] = {};
  EXPECT_EQ(pread(fd, buf, sizeof buf, 0), 15);
  EXPECT_STREQ(buf, "sealed contents");
  close(fd);
  kill_spawned(proc);
}

TEST(PlanFds, RefusesUnknownSealBitsAndMistypedDetails) {
  state::ProcessState s;
  state::FdState m;
  m.fd = 6;
  m.kind = state::FdKind::Memfd;
  m.object_id = 1;
  m.details["seals"] = 0x4000;
  s.fds.push_back(m);
  ChildPlan plan;
  auto r = plan_fds(s, plan, no_files);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("seals"), std::string::npos) << r.error().message();
  s.fds[0].kind = state::FdKind::Eventfd;
  s.fds[0].details = {{"count", "five"}};
  ChildPlan plan2;
  r = plan_fds(s, plan2, no_files);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("'fd 6 details.count' must be an integer, is a string"), std::string::npos)
      << r.error().message();
}

}  // namespace
}  // namespace wpckpt::restore
