#include "dump-format/temp_dirs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace wpckpt::image {

namespace fs = std::filesystem;

namespace {

// Names in the directory `dirfd` (without "." and "..").
std::vector<std::string> entries(int dirfd) {
  std::vector<std::string> names;
  int dup_fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return names;
  DIR* d = ::fdopendir(dup_fd);
  if (!d) {
    ::close(dup_fd);
    return names;
  }
  ::rewinddir(d);
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(d);
  return names;
}

bool remove_if_abandoned(int parent_fd, const std::string& name) {
  UniqueFd fd(::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return false;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || st.st_uid != ::geteuid()) return false;
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return false;  // its writer is alive
  for (const std::string& entry : entries(fd.get())) {
    struct stat est {};
    if (::fstatat(fd.get(), entry.c_str(), &est, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(est.st_mode)) return false;
    if (::unlinkat(fd.get(), entry.c_str(), 0) != 0) return false;
  }
  // Still holding the lock: a writer that created this name just now waits
  // for it and then sees its directory gone (lock_temp_dir).
  return ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) == 0;
}

}  // namespace

Result<UniqueFd> lock_temp_dir(const fs::path& tmp) {
  UniqueFd fd(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errno_error("open directory", tmp.string());
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return errno_error("lock directory", tmp.string());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat", tmp.string());
  if (st.st_nlink == 0) return make_error(ENOENT, "lock directory", tmp.string() + " (removed meanwhile)");
  return fd;
}

size_t remove_abandoned_temps(const fs::path& dir) {
  const fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  const std::string prefix = "." + dir.filename().string() + ".tmp-";
  UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd) return 0;
  size_t removed = 0;
  for (const std::string& name : entries(parent_fd.get())) {
    if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
        remove_if_abandoned(parent_fd.get(), name))
      ++removed;
  }
  return removed;
}

}  // namespace wpckpt::image
