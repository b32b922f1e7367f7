#include "lib/dump/mapping_capture.hpp"

#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "lib/base/uapi/pagemap_scan.hpp"
#include "lib/probe/features.hpp"
#include "tracker/memory_kind.hpp"
#include "tracker/pagemap_scanner.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {
namespace {

constexpr const char kDeleted[] = " (deleted)";
constexpr size_t kGuardVecLen = 64;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Guard regions (MADV_GUARD_INSTALL) are page-table markers, not areas: ask
// PAGEMAP_SCAN for PAGE_IS_GUARD pages. Without that category (a kernel
// before it, or switched off) they cannot be seen: the caller skips this and
// the pages read as holes, stored as zeros.
Result<std::vector<std::pair<uint64_t, uint64_t>>> guard_regions(tracker::PagemapScanner& scanner,
                                                                 const tracker::Vma& v) {
  tracker::ScanRequest r;
  r.start = v.start;
  r.end = v.end;
  r.category_mask = uapi::kPageIsGuard;
  r.return_mask = uapi::kPageIsGuard;
  std::vector<std::pair<uint64_t, uint64_t>> out;
  WPCKPT_TRY(scanner.scan(r, [&](const uapi::PageRegion& g) { out.emplace_back(g.start, g.end); }));
  return out;
}

// With smaps's "gu" flag (VM_MAYBE_GUARD, sticky) only areas that ever had a
// guard region installed can hold one. Without the flag, or with VmFlags not
// read (maps instead of smaps), every area may. The flags are the ones read
// just before the freeze (docs/KERNEL.md §17: the window this leaves).
bool may_hold_guards(const tracker::Vma& v, bool smaps_shows_guards) {
  if (!smaps_shows_guards || v.vm_flags.empty()) return true;
  return std::find(v.vm_flags.begin(), v.vm_flags.end(), "gu") != v.vm_flags.end();
}

// stat of `path`, true only if it is still the inode the area maps.
bool stat_if_mapped(const std::string& path, const tracker::Vma& v, struct stat& st) {
  if (::stat(path.c_str(), &st) != 0) return false;
  return static_cast<uint64_t>(st.st_ino) == v.inode && major(st.st_dev) == v.dev_major &&
         minor(st.st_dev) == v.dev_minor;
}

// The mapped file's identity, checked again at restore. /proc/PID/map_files
// follows the mapping to its inode even if the path was deleted or now names
// another file, but only with CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN):
// without it, the path maps shows is stat'ed and taken only if it is still
// the mapped inode (maps' own device and inode columns); otherwise (replaced
// or deleted since) the device and inode from maps are recorded, so that
// restore compares inodes and refuses a file that is not the mapped one
// (docs/KERNEL.md §13).
//
// What stat tells is the inode's: the areas of one file (a library maps four
// or five) share one stat, found in `stats` (300 -> 150 us frozen here).
using InodeStats = std::map<std::tuple<uint32_t, uint32_t, uint64_t>, std::optional<struct stat>>;

state::FileIdentity mapped_file_identity(pid_t pid, const tracker::Vma& v, InodeStats& stats) {
  state::FileIdentity id;
  id.deleted = ends_with(v.name, kDeleted);
  id.path = id.deleted ? v.name.substr(0, v.name.size() - sizeof kDeleted + 1) : v.name;
  auto [it, fresh] = stats.try_emplace({v.dev_major, v.dev_minor, v.inode});
  if (fresh || (!it->second && !id.deleted)) {  // not stat'ed yet, or not found by another area's path
    struct stat st {};
    std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end);
    bool found = ::stat(link.c_str(), &st) == 0;
    if (!found && !id.deleted) found = stat_if_mapped(id.path, v, st);
    if (found) it->second = st;
  }
  if (it->second) {
    const struct stat& st = *it->second;
    id.dev = st.st_dev;
    id.inode = st.st_ino;
    id.size = static_cast<uint64_t>(st.st_size);
    id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  } else {
    id.dev = makedev(v.dev_major, v.dev_minor);
    id.inode = v.inode;
  }
  return id;
}

}  // namespace

Result<std::vector<tracker::Vma>> read_frozen_areas(pid_t pid, const std::vector<tracker::Vma>* smaps_before_freeze) {
  return smaps_before_freeze ? tracker::read_maps_reusing_flags(pid, *smaps_before_freeze) : tracker::read_smaps(pid);
}

Result<std::vector<state::Mapping>> capture_mappings(pid_t pid, const MappingOptions& options) {
  std::vector<tracker::Vma> read_here;
  if (!options.areas) {
    WPCKPT_TRY_ASSIGN(read_here, read_frozen_areas(pid, options.smaps_before_freeze));
  }
  const std::vector<tracker::Vma>& vmas = options.areas ? *options.areas : read_here;
  std::optional<tracker::PagemapScanner> scanner;
  if (probe::has_feature("pagemap_scan_category_guard")) {
    // Guard regions are few: a short output vector, resumed if it fills.
    WPCKPT_TRY_ASSIGN(scanner, tracker::PagemapScanner::open(pid, kGuardVecLen));
  }
  const bool smaps_shows_guards = probe::has_feature("smaps_guard_flag");
  InodeStats inode_stats;
  std::vector<state::Mapping> out;
  for (const auto& v : vmas) {
    if (options.skip_end > options.skip_start && v.start >= options.skip_start && v.end <= options.skip_end) continue;
    state::Mapping m;
    m.start = v.start;
    m.end = v.end;
    m.prot = (v.read ? PROT_READ : 0) | (v.write ? PROT_WRITE : 0) | (v.exec ? PROT_EXEC : 0);
    m.shared = v.shared;
    m.kind = tracker::classify_memory(v);
    m.name = v.name;
    m.file_offset = v.offset;
    m.vm_flags = v.vm_flags;
    bool special = tracker::is_kernel_provided(m.kind);
    if (v.inode != 0 && !special) m.file = mapped_file_identity(pid, v, inode_stats);
    if (!special && scanner && may_hold_guards(v, smaps_shows_guards)) {
      WPCKPT_TRY_ASSIGN(m.guards, guard_regions(*scanner, v));
    }
    out.push_back(std::move(m));
  }
  return out;
}

void probe_mapping_features() {
  probe::has_feature("pagemap_scan_category_guard");
  probe::has_feature("smaps_guard_flag");
}

}  // namespace wpckpt::dump
