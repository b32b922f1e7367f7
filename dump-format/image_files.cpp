#include "dump-format/image_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "dump-format/file_io.hpp"

namespace wpckpt::image {

namespace fs = std::filesystem;

namespace {

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

Error untrusted(const fs::path& path, const std::string& why) {
  return make_error(EPERM, "open image", path.string() + ": " + why)
      .with_hint("every file of an image must belong to the image's owner and be writable by nobody else; "
                 "someone else may have placed or changed it: use a trusted copy of the image");
}

Result<void> check_stat(const struct stat& st, const fs::path& path, uid_t owner, bool directory) {
  if (directory && !S_ISDIR(st.st_mode)) return make_error(ENOTDIR, "open image", path.string());
  if (!directory && !S_ISREG(st.st_mode)) return untrusted(path, "not a regular file");
  if (st.st_uid != owner)
    return untrusted(path, "owned by uid " + std::to_string(st.st_uid) + ", not by the image's owner (uid " +
                               std::to_string(owner) + ")");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return untrusted(path, "writable by group or others (mode " + octal_mode(st.st_mode) + ")");
  return ok();
}

Result<CheckedFile> open_checked(int dirfd, const char* name, const fs::path& path, uid_t owner) {
  // O_NONBLOCK: a FIFO put in place of a file must not block the open.
  int fd = ::openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) return untrusted(path, "a symbolic link");
    return errno_error("open", path.string());
  }
  CheckedFile file{UniqueFd(fd), {}};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error("stat", path.string());
  WPCKPT_TRY(check_stat(st, path, owner, false));
  file.identity = FileIdentity{st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size)};
  return file;
}

}  // namespace

Result<uid_t> directory_owner(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errno_error("open image", dir.string());
  if (!S_ISDIR(st.st_mode)) return make_error(ENOTDIR, "open image", dir.string());
  return st.st_uid;
}

Result<UniqueFd> open_image_dir(const fs::path& dir, uid_t owner) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error("open image", dir.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat", dir.string());
  WPCKPT_TRY(check_stat(st, dir, owner, true));
  return fd;
}

Result<CheckedFile> open_image_file(int dirfd, const fs::path& dir, const std::string& name, uid_t owner) {
  return open_checked(dirfd, name.c_str(), dir / name, owner);
}

Result<UniqueFd> reopen_image_file(const fs::path& path, uid_t owner, const FileIdentity& expected) {
  WPCKPT_TRY_ASSIGN(CheckedFile file, open_checked(AT_FDCWD, path.c_str(), path, owner));
  if (file.identity.dev != expected.dev || file.identity.ino != expected.ino || file.identity.size != expected.size)
    return make_error(ESTALE, "read image", path.string() + ": replaced while the image was being read")
        .with_hint("do not change images while wpckpt reads them; run the command again");
  return std::move(file.fd);
}

Result<std::vector<std::byte>> read_checked_file(const CheckedFile& file, const fs::path& path, uint64_t max_size) {
  if (file.identity.size > max_size)
    return Error{0, "read", path.string() + ": larger than " + std::to_string(max_size) + " bytes", {}};
  std::vector<std::byte> data(static_cast<size_t>(file.identity.size));
  WPCKPT_TRY(pread_exact(file.fd.get(), data, 0, path));
  return data;
}

}  // namespace wpckpt::image
