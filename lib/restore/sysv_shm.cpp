#include "lib/restore/sysv_shm.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/shm.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>

#include "lib/base/unique_fd.hpp"

namespace wpckpt::restore {
namespace {

constexpr const char* kNextId = "/proc/sys/kernel/shm_next_id";

Result<void> set_next_id(int id) {
  UniqueFd fd(::open(kNextId, O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_error("open", kNextId).with_hint("restoring SysV shared memory with its id needs root");
  const std::string text = std::to_string(id);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return errno_error("write", std::string(kNextId) + " = " + text);
  return ok();
}

std::string what(const state::SysvShm& s) {
  return fmt::format("SysV shared memory segment {} (key 0x{:08x}, {} bytes)", s.id, static_cast<uint32_t>(s.key), s.size);
}

// The segment `s` as it was, or already there; true when made here.
Result<bool> ensure_segment(const state::SysvShm& s, uid_t image_owner) {
  struct shmid_ds ds {};
  if (::shmctl(s.id, IPC_STAT, &ds) == 0) {
    // Attached while the process is still privileged: never another user's segment for an image of a user.
    if (image_owner != 0 && ds.shm_perm.uid != image_owner)
      return make_error(EPERM, "restore " + what(s), fmt::format("the segment there is uid {}'s", ds.shm_perm.uid))
          .with_hint("only root's images may attach segments of other users");
    if (static_cast<int32_t>(ds.shm_perm.__key) != s.key || ds.shm_segsz != s.size)
      return make_error(EEXIST, "restore " + what(s),
                        fmt::format("id {} is another segment now (key 0x{:08x}, {} bytes)", s.id,
                                    static_cast<uint32_t>(ds.shm_perm.__key), ds.shm_segsz))
          .with_hint("remove that segment (ipcrm -m " + std::to_string(s.id) + ") or restore on another host");
    return false;
  }
  WPCKPT_TRY(set_next_id(s.id));
  const int got = ::shmget(s.key, s.size, IPC_CREAT | IPC_EXCL | static_cast<int>(s.mode & 0777));
  if (got < 0) {
    Error e = errno_error("shmget", what(s));
    if (e.err == EEXIST) e.hint = "another segment has that key now: remove it (ipcs -m, ipcrm) first";
    return e;
  }
  if (got != s.id) {
    ::shmctl(got, IPC_RMID, nullptr);
    return make_error(EEXIST, "restore " + what(s), fmt::format("the kernel gave id {}", got))
        .with_hint("another process created a segment at the same moment: restore again");
  }
  struct shmid_ds set {};
  set.shm_perm.uid = s.uid;
  set.shm_perm.gid = s.gid;
  set.shm_perm.mode = static_cast<unsigned short>(s.mode & 0777);
  if (::shmctl(got, IPC_SET, &set) != 0) {
    Error e = errno_error("shmctl(IPC_SET)", what(s));
    ::shmctl(got, IPC_RMID, nullptr);
    return e;
  }
  return true;
}

// Whether the owner of the image could have made `s`, attached by `p`.
bool owner_could_make(const state::SysvShm& s, const state::ProcessState& p, uid_t image_owner) {
  if (image_owner == 0) return true;
  const state::Credentials& c = p.creds;
  bool gid_held = s.gid == c.gid || s.gid == c.egid || s.gid == c.sgid || s.gid == c.fsgid ||
                  std::find(c.groups.begin(), c.groups.end(), s.gid) != c.groups.end();
  return s.uid == image_owner && gid_held;
}

}  // namespace

bool is_sysv_mapping(const state::Mapping& m) {
  static const std::string deleted = " (deleted)";
  return m.file && m.shared && m.name.rfind("/SYSV", 0) == 0 && m.name.size() > deleted.size() &&
         m.name.compare(m.name.size() - deleted.size(), deleted.size(), deleted) == 0;
}

Result<SysvSegments> SysvSegments::make(const std::vector<const state::ProcessState*>& processes, uid_t image_owner) {
  SysvSegments out;
  std::map<int, state::SysvShm> wanted;
  for (const state::ProcessState* p : processes) {
    for (const auto& s : p->sysv_shm) {
      if (!owner_could_make(s, *p, image_owner))
        return make_error(EPERM, "restore " + what(s),
                          fmt::format("owned by uid {} gid {} in an image of uid {}", s.uid, s.gid, image_owner))
            .with_hint("only root's images may hold segments of other users");
      wanted.emplace(s.id, s);
    }
    // Every attachment must name a recorded segment.
    for (const auto& m : p->mappings)
      if (is_sysv_mapping(m) && !wanted.count(static_cast<int>(m.file->inode)))
        return make_error(EINVAL, "read process state",
                          fmt::format("SysV mapping 0x{:x} of process {} names no recorded segment", m.start, p->pid))
            .with_hint("the image is damaged or was not written by wpckpt");
  }
  for (const auto& [id, s] : wanted) {
    WPCKPT_TRY_ASSIGN(bool made, ensure_segment(s, image_owner));
    if (made) out.created_.push_back(id);
    if (s.removed) out.to_remove_.push_back(id);
  }
  return out;
}

SysvSegments& SysvSegments::operator=(SysvSegments&& other) noexcept {
  std::swap(created_, other.created_);
  std::swap(to_remove_, other.to_remove_);
  return *this;
}

SysvSegments::~SysvSegments() {
  for (int id : created_) ::shmctl(id, IPC_RMID, nullptr);
}

Result<void> SysvSegments::finish() {
  created_.clear();
  for (int id : to_remove_)
    if (::shmctl(id, IPC_RMID, nullptr) != 0 && errno != EINVAL && errno != EIDRM)
      return errno_error("shmctl(IPC_RMID)", "segment " + std::to_string(id));
  to_remove_.clear();
  return ok();
}

}  // namespace wpckpt::restore
