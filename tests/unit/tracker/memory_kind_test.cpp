// The memory-area classification against real mappings this test creates in
// itself, read back from /proc/self/maps as the kernel reports them.
#include "tracker/memory_kind.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lib/base/uapi/memory.hpp"
#include "tests/support/test_support.hpp"

namespace wpckpt::tracker {
namespace {

constexpr size_t kLen = 4 * uapi::kPageSize;

// One row of the table: a mapping made by the test and what it must be.
struct Row {
  std::string what;
  void* addr = nullptr;
  MemoryKind kind;
  bool shared;
};

const Vma* find_area(const std::vector<Vma>& vmas, const void* addr) {
  auto a = reinterpret_cast<uint64_t>(addr);
  for (const Vma& v : vmas)
    if (v.start <= a && a < v.end) return &v;
  return nullptr;
}

const Vma* find_named(const std::vector<Vma>& vmas, const char* name) {
  for (const Vma& v : vmas)
    if (v.name == name) return &v;
  return nullptr;
}

class Mappings {
 public:
  explicit Mappings(const test::TempDir& tmp) : tmp_(tmp) {}
  ~Mappings() {
    for (auto [p, len] : maps_) munmap(p, len);
    for (void* p : sysv_) shmdt(p);
    for (int fd : fds_) close(fd);
  }
  void* map(int flags, int fd, int prot = PROT_READ | PROT_WRITE) {
    void* p = mmap(nullptr, kLen, prot, flags, fd, 0);
    if (p == MAP_FAILED) return nullptr;
    maps_.emplace_back(p, kLen);
    if (prot & PROT_READ) static_cast<volatile char*>(p)[0];  // a page of it exists
    return p;
  }
  int file(const std::string& name) {
    int fd = open((tmp_ / name).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && ftruncate(fd, kLen) != 0) return -1;
    fds_.push_back(fd);
    return fd;
  }
  int memfd(const char* name) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, kLen) != 0) return -1;
    fds_.push_back(fd);
    return fd;
  }
  void* sysv() {
    int id = shmget(IPC_PRIVATE, kLen, IPC_CREAT | 0600);
    if (id < 0) return nullptr;
    void* p = shmat(id, nullptr, 0);
    shmctl(id, IPC_RMID, nullptr);  // gone once detached
    if (p == reinterpret_cast<void*>(-1)) return nullptr;
    sysv_.push_back(p);
    return p;
  }

 private:
  const test::TempDir& tmp_;
  std::vector<std::pair<void*, size_t>> maps_;
  std::vector<void*> sysv_;
  std::vector<int> fds_;
};

TEST(MemoryKind, RealMappingsTable) {
  test::TempDir tmp;
  Mappings m(tmp);
  std::vector<Row> rows;
  rows.push_back({"private anonymous", m.map(MAP_PRIVATE | MAP_ANONYMOUS, -1), MemoryKind::Anon, false});
  rows.push_back({"private anonymous PROT_NONE", m.map(MAP_PRIVATE | MAP_ANONYMOUS, -1, PROT_NONE), MemoryKind::Anon, false});
  void* named = m.map(MAP_PRIVATE | MAP_ANONYMOUS, -1);
  bool has_anon_names = named && prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, named, kLen, "kind-test") == 0;
  if (has_anon_names) rows.push_back({"named private anonymous [anon:...]", named, MemoryKind::Anon, false});
  rows.push_back({"shared anonymous", m.map(MAP_SHARED | MAP_ANONYMOUS, -1), MemoryKind::Shmem, true});
  int zero = open("/dev/zero", O_RDWR | O_CLOEXEC);
  ASSERT_GE(zero, 0);
  rows.push_back({"private /dev/zero", m.map(MAP_PRIVATE, zero), MemoryKind::Anon, false});
  rows.push_back({"shared /dev/zero", m.map(MAP_SHARED, zero), MemoryKind::Shmem, true});
  close(zero);
  int file = m.file("data");
  rows.push_back({"private file", m.map(MAP_PRIVATE, file), MemoryKind::File, false});
  rows.push_back({"shared file", m.map(MAP_SHARED, file), MemoryKind::File, true});
  int gone = m.file("deleted");
  void* private_deleted = m.map(MAP_PRIVATE, gone);
  void* shared_deleted = m.map(MAP_SHARED, gone);
  ASSERT_EQ(unlink((tmp / "deleted").c_str()), 0);
  rows.push_back({"private deleted file", private_deleted, MemoryKind::Shmem, false});
  rows.push_back({"shared deleted file", shared_deleted, MemoryKind::Shmem, true});
  int mfd = m.memfd("kind-test");
  rows.push_back({"private memfd", m.map(MAP_PRIVATE, mfd), MemoryKind::Shmem, false});
  rows.push_back({"shared memfd", m.map(MAP_SHARED, mfd), MemoryKind::Shmem, true});
  rows.push_back({"SysV shared memory", m.sysv(), MemoryKind::Shmem, true});
  void* guarded = m.map(MAP_PRIVATE | MAP_ANONYMOUS, -1);
  bool has_guards = guarded && madvise(static_cast<char*>(guarded) + uapi::kPageSize, uapi::kPageSize,
                                       uapi::kMadvGuardInstall) == 0;
  if (has_guards) rows.push_back({"private anonymous with a guard region", guarded, MemoryKind::Anon, false});
  void* heap = std::malloc(64);  // a small allocation comes from brk
  ASSERT_NE(heap, nullptr);

  auto vmas = read_maps(getpid());
  ASSERT_TRUE(vmas.ok()) << vmas.error().message();
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    ASSERT_NE(r.addr, nullptr) << "the test could not create it: " << std::strerror(errno);
    const Vma* v = find_area(*vmas, r.addr);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->shared, r.shared);
    EXPECT_EQ(memory_kind_name(classify_memory(*v)), std::string(memory_kind_name(r.kind)))
        << "maps line: " << v->prot_string() << " inode " << v->inode << " '" << v->name << "'";
  }
  const Vma* brk = find_area(*vmas, heap);
  ASSERT_NE(brk, nullptr);
  if (brk->name == "[heap]") {
    EXPECT_EQ(classify_memory(*brk), MemoryKind::Heap);
  }
  std::free(heap);
  int local = 0;
  const Vma* stack = find_area(*vmas, &local);
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(stack->name, "[stack]");
  EXPECT_EQ(classify_memory(*stack), MemoryKind::Stack);
  struct Special {
    const char* name;
    MemoryKind kind;
  };
  for (Special s : {Special{"[vdso]", MemoryKind::Vdso}, Special{"[vvar]", MemoryKind::Vvar},
                    Special{"[vvar_vclock]", MemoryKind::VvarVclock}, Special{"[vsyscall]", MemoryKind::Vsyscall}}) {
    const Vma* v = find_named(*vmas, s.name);
    if (v == nullptr && std::string(s.name) != "[vdso]") continue;  // older kernels, vsyscall=none
    ASSERT_NE(v, nullptr) << s.name;
    EXPECT_EQ(classify_memory(*v), s.kind) << s.name;
    EXPECT_TRUE(is_kernel_provided(classify_memory(*v))) << s.name;
  }
  if (!has_anon_names) std::printf("[   INFO   ] no PR_SET_VMA_ANON_NAME here: named areas not checked\n");
  if (!has_guards) std::printf("[   INFO   ] no MADV_GUARD_INSTALL here: guard regions not checked\n");
}

// What each kind implies for tracking and restore, for every combination.
TEST(MemoryKind, ConsequencesOfEachKind) {
  EXPECT_TRUE(copied_whole(MemoryKind::Shmem, true));
  EXPECT_FALSE(copied_whole(MemoryKind::Shmem, false));  // a private copy: tracked
  EXPECT_FALSE(copied_whole(MemoryKind::Anon, true));
  EXPECT_TRUE(contents_in_file(MemoryKind::File, true));
  EXPECT_FALSE(contents_in_file(MemoryKind::File, false));
  EXPECT_TRUE(untouched_page_is_file_data(MemoryKind::File, false));
  EXPECT_TRUE(untouched_page_is_file_data(MemoryKind::Shmem, false));  // private memfd, private deleted file
  EXPECT_FALSE(untouched_page_is_file_data(MemoryKind::Anon, false));
  EXPECT_FALSE(untouched_page_is_file_data(MemoryKind::Shmem, true));
  EXPECT_TRUE(maps_file_again(MemoryKind::File));
  EXPECT_FALSE(maps_file_again(MemoryKind::Shmem));
  for (MemoryKind k : {MemoryKind::Anon, MemoryKind::Heap, MemoryKind::Stack, MemoryKind::Shmem})
    EXPECT_TRUE(restored_zeroed(k)) << memory_kind_name(k);
  EXPECT_FALSE(restored_zeroed(MemoryKind::File));
  EXPECT_TRUE(is_vdso_group(MemoryKind::VvarVclock));
  EXPECT_FALSE(is_vdso_group(MemoryKind::Vsyscall));
  EXPECT_TRUE(is_kernel_provided(MemoryKind::Vsyscall));
}

// The names are the image format's: fixed, and every kind has one.
TEST(MemoryKind, NamesRoundTripAndStayStable) {
  const std::vector<std::pair<MemoryKind, std::string>> names = {
      {MemoryKind::Anon, "anon"}, {MemoryKind::Heap, "heap"},     {MemoryKind::Stack, "stack"},
      {MemoryKind::File, "file"}, {MemoryKind::Shmem, "shmem"},   {MemoryKind::Vdso, "vdso"},
      {MemoryKind::Vvar, "vvar"}, {MemoryKind::VvarVclock, "vvar_vclock"}, {MemoryKind::Vsyscall, "vsyscall"}};
  for (const auto& [kind, name] : names) {
    EXPECT_EQ(memory_kind_name(kind), name);
    auto back = parse_memory_kind(name);
    ASSERT_TRUE(back.has_value()) << name;
    EXPECT_EQ(*back, kind);
  }
  EXPECT_FALSE(parse_memory_kind("memfd").has_value());
  EXPECT_FALSE(parse_memory_kind("").has_value());
}

}  // namespace
}  // namespace wpckpt::tracker
