#include "lib/dump/sysv_shm_capture.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <map>
#include <sstream>

#include "lib/base/parse_number.hpp"
#include "lib/base/text_file.hpp"

namespace wpckpt::dump {
namespace {

constexpr std::string_view kDeleted = " (deleted)";
constexpr uint32_t kShmDest = 01000;  // SHM_DEST in the mode /proc prints

// /proc/sysvipc/shm: "key shmid perms size cpid lpid nattch uid gid cuid cgid ...".
Result<std::map<int, state::SysvShm>> read_segments() {
  const std::string path = "/proc/sysvipc/shm";
  WPCKPT_TRY_ASSIGN(std::string text, read_text_file(path));
  std::map<int, state::SysvShm> out;
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string key, id, perms, size, cpid, lpid, nattch, uid, gid;
    if (!(f >> key >> id >> perms >> size >> cpid >> lpid >> nattch >> uid >> gid)) continue;
    state::SysvShm s;
    WPCKPT_TRY_ASSIGN(s.key, parse_number<int32_t>(key, 10, path));
    WPCKPT_TRY_ASSIGN(s.id, parse_number<int>(id, 10, path));
    WPCKPT_TRY_ASSIGN(uint32_t mode, parse_number<uint32_t>(perms, 8, path));
    WPCKPT_TRY_ASSIGN(s.size, parse_number<uint64_t>(size, 10, path));
    WPCKPT_TRY_ASSIGN(s.uid, parse_number<uint32_t>(uid, 10, path));
    WPCKPT_TRY_ASSIGN(s.gid, parse_number<uint32_t>(gid, 10, path));
    s.mode = mode & 0777;
    s.removed = (mode & kShmDest) != 0;
    out[s.id] = s;
  }
  return out;
}

uint64_t page_rounded(uint64_t n) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

}  // namespace

bool is_sysv_area(const tracker::Vma& v) {
  return v.name.rfind("/SYSV", 0) == 0 && v.name.size() > kDeleted.size() &&
         v.name.compare(v.name.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0;
}

Result<void> refuse_partial_sysv_attachments(pid_t pid, std::string_view verb, const std::vector<tracker::Vma>& vmas) {
  std::map<int, state::SysvShm> segments;
  bool read = false;
  // Each attachment: areas of one id, adjacent, from offset 0 to the segment's end.
  for (size_t i = 0; i < vmas.size(); ++i) {
    if (!is_sysv_area(vmas[i])) continue;
    if (!read) {
      WPCKPT_TRY_ASSIGN(segments, read_segments());
      read = true;
    }
    const int id = static_cast<int>(vmas[i].inode);
    uint64_t end = vmas[i].offset + vmas[i].size();
    bool whole = vmas[i].offset == 0;
    while (i + 1 < vmas.size() && is_sysv_area(vmas[i + 1]) && vmas[i + 1].inode == vmas[i].inode &&
           vmas[i + 1].start == vmas[i].end && vmas[i + 1].offset == end) {
      ++i;
      end += vmas[i].size();
    }
    auto seg = segments.find(id);
    whole = whole && seg != segments.end() && end == page_rounded(seg->second.size);
    if (!whole)
      return make_error(EOPNOTSUPP, std::string(verb),
                        fmt::format("process {} has part of SysV shared memory segment {} attached (up to 0x{:x})", pid,
                                    id, vmas[i].end))
          .with_hint("restore attaches whole segments only: dump the process once it has attached the whole segment "
                     "or detached it (shmdt). Nothing was stopped");
  }
  return ok();
}

Result<std::vector<state::SysvShm>> capture_sysv_shm(const std::vector<state::Mapping>& mappings) {
  std::map<int, state::SysvShm> segments, used;
  bool read = false;
  for (const auto& m : mappings) {
    if (!m.file || m.name.rfind("/SYSV", 0) != 0) continue;
    if (!read) {
      WPCKPT_TRY_ASSIGN(segments, read_segments());
      read = true;
    }
    const int id = static_cast<int>(m.file->inode);
    auto seg = segments.find(id);
    if (seg == segments.end())
      return make_error(ENOENT, "read /proc/sysvipc/shm", fmt::format("segment {} mapped at 0x{:x}", id, m.start))
          .with_hint("the segment is not in this IPC namespace: wpckpt must run in the process's IPC namespace");
    used[id] = seg->second;
  }
  std::vector<state::SysvShm> out;
  for (auto& [id, s] : used) out.push_back(s);
  return out;
}

}  // namespace wpckpt::dump
