#include "lib/dump/mapping_capture.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "lib/base/unique_fd.hpp"
#include "lib/base/uapi/pagemap_scan.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {
namespace {

constexpr const char kDeleted[] = " (deleted)";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string kind_of(const tracker::Vma& v) {
  if (v.name == "[heap]") return "heap";
  if (v.name == "[stack]") return "stack";
  if (v.is_special()) return v.name.substr(1, v.name.size() - 2);
  // Shared anonymous memory is shmem ("/dev/zero (deleted)"); so are memfds
  // and SysV segments.
  if (v.name.rfind("/memfd:", 0) == 0 || v.name.rfind("/SYSV", 0) == 0 || v.name.rfind("/dev/zero", 0) == 0 ||
      (v.shared && v.inode == 0))
    return "shmem";
  if (v.inode != 0) return "file";
  return "anon";
}

// Guard regions (MADV_GUARD_INSTALL) are page-table markers, not areas: ask
// PAGEMAP_SCAN for PAGE_IS_GUARD pages. Kernels without it give EINVAL: none.
std::vector<std::pair<uint64_t, uint64_t>> guard_regions(int pagemap_fd, const tracker::Vma& v) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  if (pagemap_fd < 0) return out;
  uapi::PageRegion regions[64];
  uint64_t start = v.start;
  while (start < v.end) {
    uapi::PmScanArg arg{};
    arg.size = sizeof arg;
    arg.start = start;
    arg.end = v.end;
    arg.vec = reinterpret_cast<uint64_t>(regions);
    arg.vec_len = 64;
    arg.category_mask = uapi::kPageIsGuard;
    arg.return_mask = uapi::kPageIsGuard;
    long n = ::ioctl(pagemap_fd, uapi::kPagemapScan, &arg);
    if (n < 0) break;
    for (long i = 0; i < n; ++i) out.emplace_back(regions[i].start, regions[i].end);
    if (n < 64 || arg.walk_end <= start) break;
    start = arg.walk_end;
  }
  return out;
}

}  // namespace

Result<std::vector<state::Mapping>> capture_mappings(pid_t pid, const MappingOptions& options) {
  WPCKPT_TRY_ASSIGN(auto vmas, tracker::read_smaps(pid));
  UniqueFd pagemap(::open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY | O_CLOEXEC));
  std::vector<state::Mapping> out;
  for (const auto& v : vmas) {
    if (options.skip_end > options.skip_start && v.start >= options.skip_start && v.end <= options.skip_end) continue;
    state::Mapping m;
    m.start = v.start;
    m.end = v.end;
    m.prot = (v.read ? PROT_READ : 0) | (v.write ? PROT_WRITE : 0) | (v.exec ? PROT_EXEC : 0);
    m.shared = v.shared;
    m.kind = kind_of(v);
    m.name = v.name;
    m.file_offset = v.offset;
    m.vm_flags = v.vm_flags;
    bool special = v.is_special();
    m.contents_in_image = !special;
    if (v.inode != 0 && !special) {
      // map_files follows the mapping to its inode even if the path was
      // deleted or now names another file.
      state::FileIdentity id;
      id.deleted = ends_with(v.name, kDeleted);
      id.path = id.deleted ? v.name.substr(0, v.name.size() - sizeof kDeleted + 1) : v.name;
      struct stat st {};
      std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end);
      if (::stat(link.c_str(), &st) == 0) {
        id.dev = st.st_dev;
        id.inode = st.st_ino;
        id.size = static_cast<uint64_t>(st.st_size);
        id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
      } else {
        id.inode = v.inode;
      }
      m.file = id;
    }
    if (!special) m.guards = guard_regions(pagemap.get(), v);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace wpckpt::dump
