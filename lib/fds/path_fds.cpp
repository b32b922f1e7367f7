// Descriptors of files reached by a path: regular files (and block
// devices), directories, /dev/null, terminals, other character devices and
// FIFOs. The dump records the path and the file's identity; restore opens
// the path in wpckpt, as the image's owner, never blocking, and checks that
// it is the same file (recorded_file.hpp) before the child exists. A deleted
// regular file is re-created from its saved contents (ghost_file.hpp).
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <array>

#include "lib/fds/fd_handler.hpp"
#include "lib/fds/ghost_file.hpp"
#include "lib/fds/recorded_file.hpp"

namespace wpckpt::fds {
namespace {

using state::FdKind;

constexpr const char kDeleted[] = " (deleted)";

class PathHandler final : public FdHandler {
 public:
  explicit constexpr PathHandler(FdKind kind) : kind_(kind) {}

  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar& so_far) const override {
    f.file = identity_of(src.link, src.st);
    if (src.options && src.options->file_locks) {
      WPCKPT_TRY_ASSIGN(auto locks, parse_fd_locks(*src.info));
      if (!locks.empty()) f.details["locks"] = locks_to_json(locks);
    }
    if (kind_ == FdKind::Fifo) return capture_pipe_contents(src, f, so_far);
    if (kind_ == FdKind::File && f.file->deleted) return capture_ghost(src, f, so_far);
    if (S_ISCHR(src.st.st_mode)) f.details["rdev"] = {major(src.st.st_rdev), minor(src.st.st_rdev)};
    // Replaced: the path now names another file (or nothing).
    struct stat now {};
    bool replaced = !f.file->deleted && (::stat(f.file->path.c_str(), &now) != 0 || now.st_dev != src.st.st_dev ||
                                         now.st_ino != src.st.st_ino);
    if (replaced) f.details["replaced"] = true;
    return ok();
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader& files, FdObject& o) const override {
    const std::string what = "reopen fd " + std::to_string(f.fd);
    if (f.file && f.file->deleted) {
      if (kind_ != FdKind::File)
        return make_error(ENOENT, what, f.file->path + " (deleted before the dump)")
            .with_hint("a deleted " + std::string(state::fd_kind_name(kind_)) + " cannot be restored");
      o.ghost = true;
      WPCKPT_TRY(plan_ghost(f, files, o));
    }
    if (f.file) o.file = *f.file;
    if (kind_ == FdKind::DevNull && o.file.path.empty()) o.file.path = "/dev/null";
    if (o.file.path.empty() || o.file.path[0] != '/') return make_error(EINVAL, what, "no absolute path recorded");
    o.flags = f.flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC | O_NOCTTY);
    o.regular_or_block = kind_ == FdKind::File;
    o.file_type = kind_ == FdKind::Dir ? S_IFDIR : kind_ == FdKind::Fifo ? S_IFIFO : kind_ == FdKind::File ? 0 : S_IFCHR;
    if (kind_ == FdKind::DevNull) {
      o.check_rdev = true, o.rdev_major = 1, o.rdev_minor = 3;
    } else if (o.file_type == S_IFCHR) {
      std::pair<uint32_t, uint32_t> rdev{};
      WPCKPT_TRY(detail(f, "rdev", rdev));
      o.check_rdev = true, o.rdev_major = rdev.first, o.rdev_minor = rdev.second;
    }
    WPCKPT_TRY(detail(f, "replaced", o.replaced_at_dump));
    o.seek = kind_ == FdKind::File;
    o.pos = f.pos;
    WPCKPT_TRY_ASSIGN(o.locks, locks_from_json(f));
    return ok();
  }

  Result<void> prepare(FdObject& o, std::vector<UniqueFd>& held, int floor) const override {
    if (o.ghost) {
      WPCKPT_TRY_ASSIGN(UniqueFd fd, create_ghost(o));
      if (::lseek(fd.get(), static_cast<off_t>(o.pos), SEEK_SET) < 0) return errno_error("seek", o.file.path);
      WPCKPT_TRY(take_description_locks(fd.get(), o.locks, "fd " + std::to_string(o.first_fd) + " (" + o.file.path + ")"));
      WPCKPT_TRY_ASSIGN(o.inherit_fd, hold_above(std::move(fd), floor, held, "fd " + std::to_string(o.first_fd)));
      return ok();
    }
    RecordedFile want;
    want.identity = &o.file;
    want.type = o.file_type;
    want.regular_or_block = o.regular_or_block;
    want.what = "fd " + std::to_string(o.first_fd);
    want.check_rdev = o.check_rdev;
    want.rdev = makedev(o.rdev_major, o.rdev_minor);
    auto opened = open_recorded(want, o.flags);
    if (!opened && o.replaced_at_dump) {
      return std::move(opened).error().with_hint(
          "at the dump the path already named another file (the process's file was removed or renamed over); put "
          "the file the process had back under " + o.file.path + " to restore");
    }
    WPCKPT_TRY_ASSIGN(UniqueFd fd, std::move(opened));
    if (o.seek && ::lseek(fd.get(), static_cast<off_t>(o.pos), SEEK_SET) < 0 && errno != ESPIPE)
      return errno_error(want.what + ": seek to offset " + std::to_string(o.pos) + " of", o.file.path);
    WPCKPT_TRY(take_description_locks(fd.get(), o.locks, want.what + " (" + o.file.path + ")"));
    WPCKPT_TRY_ASSIGN(o.inherit_fd, hold_above(std::move(fd), floor, held, want.what));
    return ok();
  }

  int32_t create(FdObject&) const override {
    errno = EINVAL;  // opened by prepare(): the child only duplicates it
    return kStepOpen;
  }

 private:
  FdKind kind_;
};

constinit const PathHandler kFile(FdKind::File), kDir(FdKind::Dir), kDevNull(FdKind::DevNull), kTty(FdKind::Tty),
    kCharDev(FdKind::CharDev), kFifo(FdKind::Fifo);

}  // namespace

state::FileIdentity identity_of(const std::string& link, const struct stat& st) {
  state::FileIdentity id;
  std::string suffix = kDeleted;
  id.deleted = link.size() >= suffix.size() && link.compare(link.size() - suffix.size(), suffix.size(), suffix) == 0;
  id.path = id.deleted ? link.substr(0, link.size() - suffix.size()) : link;
  id.dev = st.st_dev;
  id.inode = st.st_ino;
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

Result<int> hold_above(UniqueFd fd, int floor, std::vector<UniqueFd>& held, const std::string& what) {
  UniqueFd high(::fcntl(fd.get(), F_DUPFD_CLOEXEC, floor));
  if (!high) return errno_error("fcntl(F_DUPFD)", what);
  int number = high.get();
  held.push_back(std::move(high));
  return number;
}

const FdHandler& path_handler(FdKind kind) {
  switch (kind) {
    case FdKind::Dir: return kDir;
    case FdKind::DevNull: return kDevNull;
    case FdKind::Tty: return kTty;
    case FdKind::CharDev: return kCharDev;
    case FdKind::Fifo: return kFifo;
    default: return kFile;
  }
}

}  // namespace wpckpt::fds
