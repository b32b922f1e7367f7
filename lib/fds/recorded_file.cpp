#include "lib/fds/recorded_file.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <thread>

#include <sstream>

#include "lib/base/user_account.hpp"

namespace wpckpt::fds {

Result<ImageOwner> image_owner(const std::filesystem::path& image_dir) {
  struct stat st{};
  if (::stat(image_dir.c_str(), &st) != 0) return errno_error("stat", image_dir.string());
  ImageOwner owner;
  owner.uid = st.st_uid;
  owner.gid = st.st_gid;
  WPCKPT_TRY_ASSIGN(std::optional<UserAccount> account, user_account(st.st_uid));
  if (!account) return owner;  // no passwd entry: its uid and the directory's group only
  owner.gid = account->gid;
  owner.groups = std::move(account->groups);
  return owner;
}

namespace {

// The calling thread only: raw system calls (glibc's wrappers of setgroups
// and friends apply the change to every thread of the process).
Result<void> switch_thread_fs_credentials(const ImageOwner& owner) {
  bool same_user = owner.uid == ::geteuid() && owner.gid == ::getegid();
  if (same_user) return ok();  // already the owner's: keep this thread's groups as they are
  if (::syscall(SYS_setgroups, owner.groups.size(), owner.groups.data()) != 0) {
    return errno_error("take the groups of the image's owner", "uid " + std::to_string(owner.uid))
        .with_hint("restoring another user's image needs CAP_SETUID and CAP_SETGID (run as root)");
  }
  ::syscall(SYS_setfsgid, owner.gid);
  ::syscall(SYS_setfsuid, owner.uid);
  // setfs[ug]id report the previous value, never an error: ask again (-1 changes nothing).
  auto fsgid = static_cast<gid_t>(::syscall(SYS_setfsgid, static_cast<gid_t>(-1)));
  auto fsuid = static_cast<uid_t>(::syscall(SYS_setfsuid, static_cast<uid_t>(-1)));
  if (fsuid != owner.uid || fsgid != owner.gid) {
    return make_error(EPERM, "take the file-system ids of the image's owner",
                      "uid " + std::to_string(owner.uid) + " gid " + std::to_string(owner.gid))
        .with_hint("restoring another user's image needs CAP_SETUID and CAP_SETGID (run as root)");
  }
  return ok();
}

bool type_ok(const RecordedFile& want, mode_t mode) {
  if (want.regular_or_block) return S_ISREG(mode) || S_ISBLK(mode);
  return want.type == 0 || (mode & S_IFMT) == want.type;
}

std::string expected_type_name(const RecordedFile& want) {
  return want.regular_or_block ? "a regular file" : file_type_name(want.type);
}

Error type_changed(const RecordedFile& want, mode_t now) {
  return make_error(0, want.what + ":",
                    want.identity->path + " is now " + file_type_name(now) + ", it was " + expected_type_name(want) +
                        " at the dump")
      .with_hint("the file was replaced after the dump; put the original back to restore");
}

}  // namespace

Result<void> check_file_identity(const state::FileIdentity& want, const struct stat& st, const std::string& what) {
  // Size and mtime say whether the bytes are the same (a copy with cp -p is
  // fine, an edit in place is not); without a recorded mtime, the inode.
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  bool same = want.mtime_ns != 0
                  ? want.size == static_cast<uint64_t>(st.st_size) && want.mtime_ns == mtime
                  : want.dev == static_cast<uint64_t>(st.st_dev) && want.inode == static_cast<uint64_t>(st.st_ino);
  if (same) return ok();
  std::ostringstream ctx;
  ctx << want.path << " (" << what << "): recorded dev " << want.dev << " inode " << want.inode << " size "
      << want.size << ", now dev " << st.st_dev << " inode " << st.st_ino << " size " << st.st_size;
  return make_error(0, "file changed since the dump:", ctx.str())
      .with_hint("restoring would map different bytes than the process had; put the original file back");
}

Result<void> check_same_file(const state::FileIdentity& want, const struct stat& st, const std::string& what) {
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  bool same_inode = want.dev == static_cast<uint64_t>(st.st_dev) && want.inode == static_cast<uint64_t>(st.st_ino);
  bool same_bytes = want.mtime_ns != 0 && want.size == static_cast<uint64_t>(st.st_size) && want.mtime_ns == mtime;
  if (same_inode || same_bytes) return ok();
  std::ostringstream ctx;
  ctx << want.path << " is not the file it had at the dump (recorded dev " << want.dev << " inode " << want.inode
      << " size " << want.size << ", now dev " << st.st_dev << " inode " << st.st_ino << " size " << st.st_size << ")";
  return make_error(0, what + ":", ctx.str())
      .with_hint("the file was replaced after the dump; the process would continue on another file at its old "
                 "offset. Put the original back to restore");
}

std::string file_type_name(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    default: return "a file of unknown type";
  }
}

Result<void> as_owner(const ImageOwner& owner, const std::function<Result<void>()>& work) {
  Result<void> result;
  std::thread worker([&] {
    if (auto r = switch_thread_fs_credentials(owner); !r) {
      result = std::move(r);
      return;
    }
    result = work();
  });
  worker.join();
  return result;
}

Result<void> check_directory_access(const std::string& path, const std::string& what) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return errno_error(what, path).with_hint("the directory must exist where it was at dump time");
  if (!S_ISDIR(st.st_mode)) return make_error(ENOTDIR, what, path + " is now " + file_type_name(st.st_mode));
  // AT_EACCESS: the file-system ids of this thread, not the real ones.
  if (::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) != 0)
    return errno_error(what, path).with_hint("the image's owner may not enter it; restore refuses what its owner could not do");
  return ok();
}

Result<UniqueFd> open_recorded(const RecordedFile& want, int flags) {
  const std::string& path = want.identity->path;
  if (want.identity->deleted) {
    return make_error(ENOENT, want.what + ":", path + " was deleted before the dump")
        .with_hint("a process using a deleted file cannot be restored yet");
  }
  // Look before opening: the type decides whether an open could block.
  struct stat before{};
  if (::lstat(path.c_str(), &before) != 0)
    return errno_error(want.what + ": reopen", path).with_hint("the file must exist where it was at dump time");
  if (!type_ok(want, before.st_mode)) return type_changed(want, before.st_mode);
  int open_flags = (flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_TMPFILE)) | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC;
  UniqueFd fifo_reader;
  if (S_ISFIFO(before.st_mode) && (flags & O_ACCMODE) == O_WRONLY) {
    // A write end opens (non-blocking) only while a reader exists: hold one meanwhile.
    fifo_reader.reset(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
    if (!fifo_reader) return errno_error(want.what + ": reopen FIFO", path);
  }
  UniqueFd fd(::open(path.c_str(), open_flags));
  if (!fd) {
    Error e = errno_error(want.what + ": reopen", path);
    if (e.err == EACCES || e.err == EPERM)
      return std::move(e).with_hint("the image's owner may not open it this way; restore refuses what its owner could not do");
    return e;
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return errno_error(want.what + ": fstat", path);
  if (!type_ok(want, st.st_mode)) return type_changed(want, st.st_mode);
  if (want.check_rdev) {
    if (st.st_rdev != want.rdev) {
      return make_error(0, want.what + ":",
                        path + " is device " + std::to_string(major(st.st_rdev)) + ":" +
                            std::to_string(minor(st.st_rdev)) + ", it was " + std::to_string(major(want.rdev)) + ":" +
                            std::to_string(minor(want.rdev)) + " at the dump")
          .with_hint("the device was replaced after the dump; put the original back to restore");
    }
  } else if (want.content_matters) {
    WPCKPT_TRY(check_file_identity(*want.identity, st, want.what));
  } else {
    WPCKPT_TRY(check_same_file(*want.identity, st, want.what));
  }
  if (!(flags & O_NONBLOCK)) {
    int now = ::fcntl(fd.get(), F_GETFL);
    if (now < 0 || ::fcntl(fd.get(), F_SETFL, now & ~O_NONBLOCK) != 0)
      return errno_error(want.what + ": clear O_NONBLOCK", path);
  }
  return fd;
}

}  // namespace wpckpt::fds
