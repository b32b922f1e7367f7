#include "tracker/kernel_probes.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "lib/base/uapi/memory.hpp"
#include "lib/base/uapi/pagemap_scan.hpp"
#include "lib/base/uapi/userfaultfd.hpp"
#include "lib/base/unique_fd.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::tracker {
namespace {

using namespace wpckpt::uapi;

std::string errno_text(const char* what, int err) {
  return std::string(strerrorname_np(err) ? strerrorname_np(err) : "errno") + " from " + what;
}

ProbeOutcome outcome_of(long rc, const char* what) {
  if (rc >= 0) return {true, "ok"};
  return {false, errno_text(what, errno)};
}

// A userfaultfd by whichever route this process may use.
UniqueFd open_any_uffd() {
  int flags = O_CLOEXEC | O_NONBLOCK;
  long fd = syscall(kNrUserfaultfd, flags);
  if (fd < 0) fd = syscall(kNrUserfaultfd, flags | kUffdUserModeOnly);
  if (fd < 0) {
    UniqueFd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
    if (dev) fd = ioctl(dev.get(), kUserfaultfdIocNew, flags);
  }
  return UniqueFd(fd < 0 ? -1 : static_cast<int>(fd));
}

// UFFDIO_API on a fresh uffd asking for exactly `features`.
ProbeOutcome probe_uffd_api(uint64_t features) {
  UniqueFd uffd = open_any_uffd();
  if (!uffd) return {false, errno_text("userfaultfd", errno)};
  UffdioApi api{kUffdApi, features, 0};
  if (ioctl(uffd.get(), kUffdioApi, &api) != 0) return {false, errno_text("UFFDIO_API", errno)};
  return {true, "ok"};
}

// An anonymous mapping unmapped on scope exit.
struct ScratchMapping {
  explicit ScratchMapping(size_t pages) : len(pages * kPage) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    addr = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~ScratchMapping() {
    if (addr) munmap(addr, len);
  }
  static constexpr size_t kPage = uapi::kPageSize;
  char* addr = nullptr;
  size_t len;
};

long scan(int pagemap, char* start, size_t len, uint64_t flags, uint64_t mask, PageRegion* vec,
          size_t vec_len) {
  PmScanArg arg{};
  arg.size = sizeof arg;
  arg.flags = flags;
  arg.start = reinterpret_cast<uint64_t>(start);
  arg.end = arg.start + len;
  arg.vec = reinterpret_cast<uint64_t>(vec);
  arg.vec_len = vec_len;
  arg.category_mask = mask;
  arg.return_mask = mask;
  return ioctl(pagemap, kPagemapScan, &arg);
}

// Async write-protect end to end: register, protect, write one page, and a
// PAGEMAP_SCAN with WP matching reports exactly that page, then nothing.
// With discard=true, the checked page is MADV_DONTNEED'ed instead of written.
// Runs `body` with an open /proc/self/pagemap. A wpckpt with file
// capabilities (setcap) is not dumpable, so its /proc/self files belong to
// root and its own user cannot open them: then the body runs in a child that
// first gives up every capability and only then becomes dumpable (a plain
// process of the same user, nothing for others to take over), and reports
// back through a pipe.
template <typename Body>
ProbeOutcome with_own_pagemap(Body body) {
  if (prctl(PR_GET_DUMPABLE) == 1) {
    UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    if (!pagemap) return {false, errno_text("open /proc/self/pagemap", errno)};
    return body(pagemap.get());
  }
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) return {false, errno_text("pipe2", errno)};
  UniqueFd rd(ends[0]), wr(ends[1]);
  pid_t pid = fork();
  if (pid < 0) return {false, errno_text("fork", errno)};
  if (pid == 0) {
    rd = UniqueFd();
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct none[2]{};
    ProbeOutcome o;
    if (syscall(SYS_capset, &header, none) != 0) {
      o = {false, errno_text("capset (drop all)", errno)};
    } else if (prctl(PR_SET_DUMPABLE, 1) != 0) {
      o = {false, errno_text("PR_SET_DUMPABLE", errno)};
    } else {
      UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
      o = pagemap ? body(pagemap.get()) : ProbeOutcome{false, errno_text("open /proc/self/pagemap", errno)};
    }
    std::string msg = (o.present ? "1" : "0") + o.detail;
    ssize_t n = write(wr.get(), msg.data(), msg.size());
    _exit(n == static_cast<ssize_t>(msg.size()) ? 0 : 1);
  }
  wr = UniqueFd();
  std::string msg;
  char buf[256];
  for (ssize_t n; (n = read(rd.get(), buf, sizeof buf)) > 0;) msg.append(buf, static_cast<size_t>(n));
  int status = 0;
  waitpid(pid, &status, 0);
  if (msg.empty() || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return {false, "the pagemap probe child failed"};
  return {msg[0] == '1', msg.substr(1)};
}

// Async write-protect end to end on a scratch mapping: the written (or
// discarded) third page, and only it, is reported, then no longer after
// re-protection. Everything happens in one process: a fork would drop the
// registration from the child's copy.
ProbeOutcome wp_async_scan(int pagemap, bool discard) {
  UniqueFd uffd = open_any_uffd();
  if (!uffd) return {false, errno_text("userfaultfd", errno)};
  UffdioApi api{kUffdApi, kFeatWpAsync, 0};
  // Never write to protected memory unless WP_ASYNC was accepted: a
  // synchronous WP fault with nobody reading the uffd would hang this process.
  if (ioctl(uffd.get(), kUffdioApi, &api) != 0) return {false, errno_text("UFFDIO_API(WP_ASYNC)", errno)};
  ScratchMapping mem(4);
  if (!mem.addr) return {false, errno_text("mmap", errno)};
  std::memset(mem.addr, 1, mem.len);
  UffdioRegister reg{{reinterpret_cast<uint64_t>(mem.addr), mem.len}, kRegisterModeWp, 0};
  if (ioctl(uffd.get(), kUffdioRegister, &reg) != 0) return {false, errno_text("UFFDIO_REGISTER", errno)};
  UffdioWriteprotect wp{{reinterpret_cast<uint64_t>(mem.addr), mem.len}, kWriteprotectModeWp};
  if (ioctl(uffd.get(), kUffdioWriteprotect, &wp) != 0) return {false, errno_text("UFFDIO_WRITEPROTECT", errno)};

  char* target = mem.addr + 2 * ScratchMapping::kPage;
  if (discard) {
    if (madvise(target, ScratchMapping::kPage, MADV_DONTNEED) != 0) return {false, errno_text("madvise", errno)};
  } else {
    *reinterpret_cast<volatile char*>(target) = 2;
  }
  PageRegion vec[8];
  long n = scan(pagemap, mem.addr, mem.len, kPmScanWpMatching | kPmScanCheckWpasync,
                kPageIsWritten, vec, 8);
  if (n < 0) return {false, errno_text("PAGEMAP_SCAN", errno)};
  bool exact = n == 1 && vec[0].start == reinterpret_cast<uint64_t>(target) &&
               vec[0].end == vec[0].start + ScratchMapping::kPage;
  if (!exact) {
    return {false, discard ? "a discarded page is not reported as written (compare present sets instead)"
                           : "the written page was not reported exactly (" + std::to_string(n) + " regions)"};
  }
  long again = scan(pagemap, mem.addr, mem.len, kPmScanWpMatching, kPageIsWritten, vec, 8);
  if (again != 0) return {false, "pages stay reported after re-protection"};
  return {true, "ok"};
}

ProbeOutcome probe_wp_async_scan(bool discard) {
  return with_own_pagemap([discard](int pagemap) { return wp_async_scan(pagemap, discard); });
}

ProbeOutcome probe_pagemap_scan_category(uint64_t category) {
  return with_own_pagemap([category](int pagemap) {
    ScratchMapping mem(1);
    if (!mem.addr) return ProbeOutcome{false, errno_text("mmap", errno)};
    PageRegion vec[1];
    return outcome_of(scan(pagemap, mem.addr, mem.len, 0, category, vec, 1), "PAGEMAP_SCAN");
  });
}

// A freshly written page carries the soft-dirty bit (pagemap bit 55) only on
// kernels built with CONFIG_MEM_SOFT_DIRTY.
ProbeOutcome probe_soft_dirty() {
  return with_own_pagemap([](int pagemap) -> ProbeOutcome {
    ScratchMapping mem(1);
    if (!mem.addr) return {false, errno_text("mmap", errno)};
    *reinterpret_cast<volatile char*>(mem.addr) = 1;
    uint64_t entry = 0;
    off_t off = static_cast<off_t>(reinterpret_cast<uint64_t>(mem.addr) / ScratchMapping::kPage * 8);
    if (pread(pagemap, &entry, sizeof entry, off) != sizeof entry) return {false, errno_text("pread pagemap", errno)};
    if (!(entry & kPagemapPresent)) return {false, "page not present after a write"};
    if (!(entry & kPagemapSoftDirty)) return {false, "written page has no soft-dirty bit (CONFIG_MEM_SOFT_DIRTY=n)"};
    return {true, "ok"};
  });
}

// /proc/PID/smaps marks an area that ever had a guard region installed
// ("gu", VM_MAYBE_GUARD; sticky): a dump then looks for guard markers only
// in those areas instead of walking every area's page tables.
ProbeOutcome probe_smaps_guard_flag() {
  ScratchMapping mem(2);
  if (!mem.addr) return {false, errno_text("mmap", errno)};
  if (madvise(mem.addr, ScratchMapping::kPage, kMadvGuardInstall) != 0) return {false, errno_text("MADV_GUARD_INSTALL", errno)};
  auto vmas = read_smaps(::getpid());
  if (!vmas) return {false, vmas.error().message()};
  const auto addr = reinterpret_cast<uint64_t>(mem.addr);
  for (const Vma& v : *vmas) {
    if (addr < v.start || addr >= v.end) continue;
    for (const std::string& f : v.vm_flags)
      if (f == "gu") return {true, "ok"};
    return {false, "an area with a guard region shows no \"gu\" in its VmFlags"};
  }
  return {false, "the scratch area is missing from /proc/self/smaps"};
}

// MISSING mode end to end: register a page, fill it with UFFDIO_COPY.
ProbeOutcome probe_uffd_missing() {
  UniqueFd uffd = open_any_uffd();
  if (!uffd) return {false, errno_text("userfaultfd", errno)};
  UffdioApi api{kUffdApi, 0, 0};
  if (ioctl(uffd.get(), kUffdioApi, &api) != 0) return {false, errno_text("UFFDIO_API", errno)};
  ScratchMapping dst(1), src(1);
  if (!dst.addr || !src.addr) return {false, errno_text("mmap", errno)};
  std::memset(src.addr, 0x5a, src.len);
  UffdioRegister reg{{reinterpret_cast<uint64_t>(dst.addr), dst.len}, kRegisterModeMissing, 0};
  if (ioctl(uffd.get(), kUffdioRegister, &reg) != 0) return {false, errno_text("UFFDIO_REGISTER(MISSING)", errno)};
  UffdioCopy copy{reinterpret_cast<uint64_t>(dst.addr), reinterpret_cast<uint64_t>(src.addr), dst.len, 0, 0};
  if (ioctl(uffd.get(), kUffdioCopy, &copy) != 0) return {false, errno_text("UFFDIO_COPY", errno)};
  if (dst.addr[100] != 0x5a) return {false, "UFFDIO_COPY did not fill the page"};
  return {true, "ok"};
}

FeatureProbe api_feature(const char* key, uint64_t bit, const char* description, const char* loss) {
  return {key, description, loss, false, [bit] { return probe_uffd_api(bit); }, {}};
}

// Tracking cannot work without it: pre-dump and dump refuse (check says "REQUIRED").
void needed_for_checkpoints(FeatureProbe& p) {
  p.required = true;
  p.needed_by = {"pre-dump", "dump"};
}

constexpr const char* kLazyNotBuilt = "nothing yet: lazy restore (restore --lazy) is not built";

}  // namespace

std::vector<FeatureProbe> kernel_probes() {
  std::vector<FeatureProbe> probes;
  probes.push_back({"userfaultfd_syscall", "userfaultfd(2) without UFFD_USER_MODE_ONLY",
                    "the agent (and restore, re-creating it) use UFFD_USER_MODE_ONLY or /dev/userfaultfd instead",
                    false, [] {
                      long fd = syscall(kNrUserfaultfd, O_CLOEXEC | O_NONBLOCK);
                      ProbeOutcome o = outcome_of(fd, "userfaultfd(2)");
                      if (fd >= 0) close(static_cast<int>(fd));
                      return o;
                    }});
  probes.push_back({"userfaultfd_user_mode_only", "userfaultfd(2) with UFFD_USER_MODE_ONLY (unprivileged route)",
                    "no unprivileged route: the agent uses userfaultfd(2) or /dev/userfaultfd only", false, [] {
                      long fd = syscall(kNrUserfaultfd, O_CLOEXEC | O_NONBLOCK | kUffdUserModeOnly);
                      ProbeOutcome o = outcome_of(fd, "userfaultfd(2)");
                      if (fd >= 0) close(static_cast<int>(fd));
                      return o;
                    }});
  probes.push_back({"dev_userfaultfd", "/dev/userfaultfd and USERFAULTFD_IOC_NEW",
                    "the agent does not fall back to /dev/userfaultfd", false, [] {
                      UniqueFd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
                      if (!dev) return ProbeOutcome{false, errno_text("open /dev/userfaultfd", errno)};
                      long fd = ioctl(dev.get(), kUserfaultfdIocNew, O_CLOEXEC | O_NONBLOCK);
                      ProbeOutcome o = outcome_of(fd, "USERFAULTFD_IOC_NEW");
                      if (fd >= 0) close(static_cast<int>(fd));
                      return o;
                    }, {}});
  probes.push_back(api_feature("uffd_wp_async", kFeatWpAsync, "asynchronous write-protect (UFFD_FEATURE_WP_ASYNC)",
                               "no tracking: run, pre-dump and dump refuse; restore makes a process that cannot be "
                               "checkpointed again"));
  needed_for_checkpoints(probes.back());
  probes.back().needed_by.push_back("run");
  probes.push_back(api_feature("uffd_wp_unpopulated", kFeatWpUnpopulated,
                               "write-protect markers on untouched pages (WP_UNPOPULATED)",
                               "writes to never-touched pages could go unseen: every pre-dump and dump captures "
                               "every area whole"));
  probes.push_back(api_feature("uffd_wp_hugetlbfs_shmem", kFeatWpHugetlbfsShmem,
                               "write-protect of hugetlbfs and shmem (WP_HUGETLBFS_SHMEM)",
                               "nothing: wpckpt does not ask for it (shared memory is copied whole at every "
                               "iteration anyway)"));
  probes.push_back(api_feature("uffd_missing_shmem", kFeatMissingShmem, "MISSING faults on shmem",
                               kLazyNotBuilt));
  probes.push_back(api_feature("uffd_event_fork", kFeatEventFork, "UFFD_EVENT_FORK (needs CAP_SYS_PTRACE)",
                               kLazyNotBuilt));
  probes.push_back(api_feature("uffd_event_remap", kFeatEventRemap, "UFFD_EVENT_REMAP",
                               kLazyNotBuilt));
  probes.push_back(api_feature("uffd_event_remove", kFeatEventRemove, "UFFD_EVENT_REMOVE",
                               kLazyNotBuilt));
  probes.push_back(api_feature("uffd_event_unmap", kFeatEventUnmap, "UFFD_EVENT_UNMAP",
                               kLazyNotBuilt));
  probes.push_back(api_feature("uffd_move", kFeatMove, "UFFDIO_MOVE",
                               "nothing: restore writes pages through /proc/PID/mem"));
  probes.push_back({"uffd_missing", "MISSING-mode registration and UFFDIO_COPY",
                    kLazyNotBuilt, false, probe_uffd_missing, {}});
  probes.push_back({"pagemap_scan", "the PAGEMAP_SCAN ioctl on /proc/PID/pagemap",
                    "no scan of written pages: pre-dump and dump refuse", true,
                    [] { return probe_pagemap_scan_category(kPageIsPresent); }, {}});
  needed_for_checkpoints(probes.back());
  probes.push_back({"pagemap_scan_wp_matching",
                    "async write-protect end to end: a written page is reported exactly and re-protected",
                    "no exact tracking: pre-dump and dump refuse", true, [] { return probe_wp_async_scan(false); }, {}});
  needed_for_checkpoints(probes.back());
  probes.push_back({"discarded_pages_written", "MADV_DONTNEED'ed protected pages are reported as written",
                    "a page discarded after a scan would keep its old contents in a delta: every pre-dump and dump "
                    "captures every area whole", false,
                    [] { return probe_wp_async_scan(true); }, {}});
  struct Category {
    const char* key;
    uint64_t bit;
    const char* loss;
    bool needed;  // pre-dump and dump refuse without it
  };
  static const Category categories[] = {
      {"pagemap_scan_category_wpallowed", kPageIsWpallowed,
       "new areas cannot be told from tracked ones: pre-dump and dump refuse", true},
      {"pagemap_scan_category_written", kPageIsWritten, "no scan of written pages: pre-dump and dump refuse", true},
      {"pagemap_scan_category_file", kPageIsFile, "nothing: wpckpt does not ask for it", false},
      {"pagemap_scan_category_present", kPageIsPresent, "present pages cannot be found: pre-dump and dump refuse",
       true},
      {"pagemap_scan_category_swapped", kPageIsSwapped, "swapped pages cannot be found: pre-dump and dump refuse",
       true},
      {"pagemap_scan_category_pfnzero", kPageIsPfnzero,
       "pages mapped to the shared zero page are read and found zero by the writer (slower)", false},
      {"pagemap_scan_category_huge", kPageIsHuge, "nothing: wpckpt does not ask for it", false},
      {"pagemap_scan_category_soft_dirty", kPageIsSoftDirty, "nothing: wpckpt does not use soft-dirty bits", false},
      {"pagemap_scan_category_guard", kPageIsGuard,
       "guard regions (MADV_GUARD_INSTALL) are not seen: a dump stores them as zero pages and restore makes them "
       "ordinary memory", false},
  };
  for (const Category& c : categories) {
    uint64_t bit = c.bit;
    probes.push_back({c.key, "PAGEMAP_SCAN accepts this page category", c.loss, false,
                      [bit] { return probe_pagemap_scan_category(bit); }, {}});
    if (c.needed) needed_for_checkpoints(probes.back());
  }
  probes.push_back({"smaps_guard_flag", "smaps marks areas that may hold guard regions (VmFlags \"gu\")",
                    "a dump walks the page tables of every area for guard regions while the process is frozen "
                    "(about 3 ns a page)", false, probe_smaps_guard_flag, {}});
  probes.push_back({"soft_dirty", "soft-dirty page bits (CONFIG_MEM_SOFT_DIRTY, what CRIU uses)",
                    "nothing: wpckpt tracks with async write-protect", false, probe_soft_dirty, {}});
  return probes;
}

}  // namespace wpckpt::tracker
