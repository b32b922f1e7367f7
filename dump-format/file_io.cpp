#include "dump-format/file_io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

namespace wpckpt::image {

namespace fs = std::filesystem;

namespace {

// True when the directory `fd` holds no entry but "." and "..".
Result<bool> directory_is_empty(int fd, const fs::path& dir) {
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    Error e = errno_error("read directory", dir.string());
    ::close(fd);
    return e;
  }
  bool empty = true;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") {
      empty = false;
      break;
    }
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return make_error(err, "read directory", dir.string());
  return empty;
}

}  // namespace

Result<TargetState> check_image_target(const fs::path& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return TargetState::Absent;
    return errno_error("stat", dir.string());
  }
  if (!S_ISDIR(st.st_mode))
    return make_error(EEXIST, "create image", dir.string() + " (exists and is not a directory)")
        .with_hint("name a new directory or an empty one; an image is never written over a file or a symlink");
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno_error("open", dir.string());
  WPCKPT_TRY_ASSIGN(bool empty, directory_is_empty(fd, dir));
  if (!empty)
    return make_error(ENOTEMPTY, "create image", dir.string())
        .with_hint("an image is never written over files: name a new or empty directory (mkdir imgs/N), or remove "
                   "this one");
  return TargetState::EmptyDir;
}

Result<fs::path> make_temp_sibling(const fs::path& dir) {
  fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  std::string name = dir.filename().string();
  if (name.empty() || name == "." || name == "..") return make_error(EINVAL, "create image", dir.string());
  std::string templ = (parent / ("." + name + ".tmp-XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr)
    return errno_error("create directory", templ).with_hint("the parent directory must exist and be writable");
  return fs::path(templ);
}

Result<UniqueFd> create_private_file(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return errno_error("create", path.string());
  return fd;
}

Result<void> write_all(int fd, std::span<const std::byte> data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("write", path.string());
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return ok();
}

Result<void> pwrite_all(int fd, std::span<const std::byte> data, off_t offset, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("write", path.string());
    }
    data = data.subspan(static_cast<size_t>(n));
    offset += n;
  }
  return ok();
}

Result<void> pread_exact(int fd, std::span<std::byte> out, uint64_t offset, const fs::path& path) {
  while (!out.empty()) {
    ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read", path.string());
    }
    if (n == 0) return Error{0, "read", path.string() + ": file ends early (truncated)", {}};
    out = out.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return ok();
}

Result<void> fsync_fd(int fd, const fs::path& path) {
  if (::fsync(fd) != 0) return errno_error("fsync", path.string());
  return ok();
}

Result<void> write_private_file(const fs::path& path, std::span<const std::byte> data) {
  WPCKPT_TRY_ASSIGN(UniqueFd fd, create_private_file(path));
  WPCKPT_TRY(write_all(fd.get(), data, path));
  return fsync_fd(fd.get(), path);
}

Result<void> fsync_dir(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error("open directory", dir.string());
  return fsync_fd(fd.get(), dir);
}

Result<void> commit_directory(const fs::path& tmp, const fs::path& dir, TargetState was) {
  WPCKPT_TRY(fsync_dir(tmp));
  // Absent: RENAME_NOREPLACE, because a plain rename would replace an empty
  // directory someone created meanwhile. EmptyDir: a plain rename replaces
  // the directory only if it is still empty (else ENOTEMPTY/EEXIST).
  unsigned flags = was == TargetState::Absent ? RENAME_NOREPLACE : 0;
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), flags) != 0) {
    Error e = errno_error("rename " + tmp.string() + " to", dir.string());
    if (e.err == EEXIST || e.err == ENOTEMPTY)
      return std::move(e).with_hint("something was written at the target during the dump; an image is never written "
                                    "over files: choose a new or empty directory");
    return e;
  }
  fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  return fsync_dir(parent);
}

Result<std::vector<std::byte>> read_small_file(const fs::path& path, uint64_t max_size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return errno_error("open", path.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat", path.string());
  if (!S_ISREG(st.st_mode)) return Error{0, "open", path.string() + ": not a regular file", {}};
  if (static_cast<uint64_t>(st.st_size) > max_size)
    return Error{0, "read", path.string() + ": larger than " + std::to_string(max_size) + " bytes", {}};
  std::vector<std::byte> data(static_cast<size_t>(st.st_size));
  WPCKPT_TRY(pread_exact(fd.get(), data, 0, path));
  return data;
}

void remove_tree(const fs::path& dir) noexcept {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace wpckpt::image
