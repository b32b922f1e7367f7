#include "lib/restore/uffd_fill.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "lib/base/log.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/base/uapi/userfaultfd.hpp"
#include "lib/ptrace/injector.hpp"
#include "tracker/memory_kind.hpp"

namespace wpckpt::restore {

namespace {


// transparent_hugepage/enabled is "always": every anonymous fault may get a
// huge page.
bool thp_always() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(f, line);
  return line.find("[always]") != std::string::npos;
}

// Restore created it as fresh private anonymous memory (address_space.cpp):
// what MISSING mode registers and UFFDIO_COPY fills page by page. Private
// file and shmem mappings are not: they hold file data or need other modes.
// Nor is memory where a write's fault gets a transparent huge page: a
// registered area gets none, UFFDIO_COPY places small pages, and the process
// would run on those.
bool fresh_private_anon(const state::Mapping& m, bool thp_always) {
  if (m.shared) return false;
  using tracker::MemoryKind;
  if (m.kind != MemoryKind::Anon && m.kind != MemoryKind::Heap && m.kind != MemoryKind::Stack) return false;
  return !m.has_vm_flag("hg") && (!thp_always || m.has_vm_flag("nh"));
}

// The userfaultfd of the process, in our hands, closed in the process.
// User-mode-only: it needs no privilege (vm.unprivileged_userfaultfd), and a
// kernel access to a registered missing page fails instead of waiting for us.
Result<UniqueFd> take_uffd(ptrace::Injector& inj, pid_t pid) {
  WPCKPT_TRY_ASSIGN(long fd, inj.syscall(uapi::kNrUserfaultfd, O_CLOEXEC | O_NONBLOCK | uapi::kUffdUserModeOnly));
  if (fd < 0) return make_error(static_cast<int>(-fd), "userfaultfd", "in the restored process");
  UniqueFd pidfd(static_cast<int>(::syscall(uapi::kNrPidfdOpen, pid, 0)));
  UniqueFd uffd(pidfd ? static_cast<int>(::syscall(uapi::kNrPidfdGetfd, pidfd.get(), static_cast<int>(fd), 0)) : -1);
  const int err = errno;
  WPCKPT_TRY(inj.checked_syscall("close", "the userfaultfd in the restored process", SYS_close,
                                 static_cast<uint64_t>(fd)));
  if (!uffd) return make_error(err, "pidfd_getfd", "the userfaultfd of the restored process");
  return uffd;
}

// The mappings UFFDIO_COPY fills, each a range of its own: one UFFDIO_COPY
// must stay inside one VMA (ENOENT otherwise), and a mapping is never split
// into several, while adjacent ones may not have merged.
std::vector<UffdFill::Range> fill_ranges(const std::vector<state::Mapping>& mappings) {
  const bool always = thp_always();
  std::vector<UffdFill::Range> out;
  for (const auto& m : mappings)
    if (fresh_private_anon(m, always) && m.end > m.start) out.push_back({m.start, m.end});
  return out;
}

}  // namespace

std::unique_ptr<UffdFill> UffdFill::start(ptrace::Injector& inj, pid_t pid,
                                          const std::vector<state::Mapping>& mappings) {
  std::vector<Range> ranges = fill_ranges(mappings);
  if (ranges.empty()) return nullptr;
  Result<UniqueFd> uffd = take_uffd(inj, pid);
  if (!uffd) {
    log::debug("memory fill through /proc/{}/mem: {}", pid, uffd.error().message());
    return nullptr;
  }
  return register_ranges(std::move(*uffd), pid, ranges);
}

std::unique_ptr<UffdFill> UffdFill::adopt(UniqueFd uffd, pid_t pid, const std::vector<state::Mapping>& mappings) {
  return register_ranges(std::move(uffd), pid, fill_ranges(mappings));
}

std::unique_ptr<UffdFill> UffdFill::register_ranges(UniqueFd uffd, pid_t pid, const std::vector<Range>& wanted) {
  uapi::UffdioApi api{uapi::kUffdApi, 0, 0};
  if (::ioctl(uffd.get(), uapi::kUffdioApi, &api) != 0) {
    log::debug("memory fill through /proc/{}/mem: UFFDIO_API: {}", pid, std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<UffdFill> fill(new UffdFill(std::move(uffd)));
  for (const Range& r : wanted) {
    uapi::UffdioRegister reg{{r.start, r.end - r.start}, uapi::kRegisterModeMissing, 0};
    if (::ioctl(fill->uffd_.get(), uapi::kUffdioRegister, &reg) == 0) {
      fill->ranges_.push_back(r);
      continue;
    }
    // A mapping the kernel does not register (e.g. VM_DROPPABLE) is written
    // through /proc/PID/mem.
    log::debug("memory fill of {:#x}-{:#x} through /proc/{}/mem: UFFDIO_REGISTER: {}", r.start, r.end, pid,
               std::strerror(errno));
  }
  return fill;
}

UffdFill::~UffdFill() { unregister_all(); }

UffdFill::Copy UffdFill::copy(uint64_t addr, const std::byte* src, uint64_t len, uint64_t& done) {
  done = 0;
  while (done < len) {
    uapi::UffdioCopy c{addr + done, reinterpret_cast<uint64_t>(src + done), len - done, 0, 0};
    const int r = ::ioctl(uffd_.get(), uapi::kUffdioCopy, &c);
    if (c.copy > 0) {
      done += static_cast<uint64_t>(c.copy);
      pages_copied_ += static_cast<uint64_t>(c.copy) / kPage;
    }
    if (r == 0) continue;
    if (errno == EAGAIN && c.copy > 0) continue;  // partly done; the rest again
    if (errno == EEXIST) return Copy::Present;
    log::debug("memory fill at {:#x}: UFFDIO_COPY: {}; the rest through /proc/PID/mem", addr + done,
               std::strerror(errno));
    return Copy::Refused;
  }
  return Copy::Done;
}

void UffdFill::unregister_all() {
  for (const Range& r : ranges_) {
    uapi::UffdioRange range{r.start, r.end - r.start};
    if (::ioctl(uffd_.get(), uapi::kUffdioUnregister, &range) != 0)
      log::debug("UFFDIO_UNREGISTER {:#x}-{:#x}: {}", r.start, r.end, std::strerror(errno));
  }
  ranges_.clear();
}

}  // namespace wpckpt::restore
