#include "lib/fds/ghost_file.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace wpckpt::fds {
namespace {

constexpr int kKcmpFile = 0;

Error refuse(const FdSource& src, const std::string& why, const std::string& hint) {
  return make_error(EOPNOTSUPP, "dump", fmt::format("fd {} of process {} ({}) {}", src.fd, src.pid, src.link, why))
      .with_hint(hint);
}

// Is the deleted file (by inode) mapped shared anywhere in the process?
bool mapped_shared(pid_t pid, ino_t ino) {
  std::ifstream maps(fmt::format("/proc/{}/maps", pid));
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, dev;
    unsigned long long inode = 0;
    in >> range >> perms >> offset >> dev >> inode;
    if (inode == ino && perms.size() == 4 && perms[3] == 's') return true;
  }
  return false;
}

Result<std::vector<uint8_t>> read_contents(const std::string& path, size_t size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return errno_error("open deleted file", path);
  std::vector<uint8_t> data(size);
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd.get(), data.data() + got, size - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read deleted file", path);
    if (n == 0) break;  // shrank meanwhile (cannot happen frozen)
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

// An unnamed file in `dir`: O_TMPFILE, or (file systems without it) a new
// name removed at once.
Result<UniqueFd> unnamed_file(const std::string& dir, mode_t mode) {
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, mode));
  if (fd || (errno != EOPNOTSUPP && errno != EISDIR)) {
    if (!fd) return errno_error("create an unnamed file in", dir).with_hint("the directory the deleted file was in must exist and be writable by the image's owner");
    return fd;
  }
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string path = fmt::format("{}/.wpckpt-ghost-{:08x}", dir, rd());
    UniqueFd named(::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!named && errno == EEXIST) continue;
    if (!named) return errno_error("create", path);
    if (::unlink(path.c_str()) != 0) return errno_error("unlink", path);
    return named;
  }
  return make_error(EEXIST, "create an unnamed file in", dir);
}

}  // namespace

Result<void> capture_ghost(const FdSource& src, state::FdState& f, CaptureSoFar& so_far) {
  const uint64_t limit = src.options ? src.options->ghost_limit : 0;
  if (!S_ISREG(src.st.st_mode) || static_cast<uint64_t>(src.st.st_size) > limit)
    return refuse(src, fmt::format("is a deleted file of {} bytes", src.st.st_size),
                  "its contents are saved up to --ghost-limit (now " + std::to_string(limit) + " bytes): raise it");
  const std::string name = fmt::format("ghost-{}-{}.bin", src.st.st_dev, src.st.st_ino);
  for (const auto& earlier : so_far.fds) {
    auto it = earlier.details.find("ghost_file");
    if (it == earlier.details.end() || *it != name) continue;
    if (::syscall(SYS_kcmp, src.pid, src.pid, kKcmpFile, earlier.fd, src.fd) != 0)
      return refuse(src, fmt::format("is a deleted file also opened separately as fd {}", earlier.fd),
                    "one deleted file open twice cannot be restored yet (it would become two files): close one");
    f.details["ghost_file"] = name;
    f.details["mode"] = src.st.st_mode & 07777;
    return ok();
  }
  if (mapped_shared(src.pid, src.st.st_ino))
    return refuse(src, "is a deleted file that is also mapped shared",
                  "a shared mapping of a deleted file comes back apart from the file: unmap or close one first");
  WPCKPT_TRY_ASSIGN(auto data, read_contents(src.proc_path, static_cast<size_t>(src.st.st_size)));
  so_far.files.emplace_back(name, std::move(data));
  f.details["ghost_file"] = name;
  f.details["mode"] = src.st.st_mode & 07777;
  return ok();
}

Result<void> plan_ghost(const state::FdState& f, const ImageFileReader& files, FdObject& o) {
  const std::string where = "fd " + std::to_string(f.fd) + " details";
  std::string name;
  WPCKPT_TRY(detail(f, "ghost_file", name));
  if (name.empty())
    return make_error(ENOENT, "reopen fd " + std::to_string(f.fd), f.file->path + " (deleted before the dump)")
        .with_hint("the image has no contents for it (made by an older wpckpt): it cannot be restored");
  if (name.find('/') != std::string::npos || name.rfind("ghost-", 0) != 0)
    return state::field_error(where + ".ghost_file", "must name a ghost-*.bin file of the image");
  uint32_t mode = 0600;
  WPCKPT_TRY(detail(f, "mode", mode));
  if (mode > 07777) return state::field_error(where + ".mode", "is not a permission mode");
  WPCKPT_TRY_ASSIGN(auto bytes, files(name));
  o.data.assign(reinterpret_cast<const uint8_t*>(bytes.data()), reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size());
  o.ghost_mode = mode & 0777;  // never set-id bits on a file a restore creates
  return ok();
}

Result<UniqueFd> create_ghost(const FdObject& o) {
  const std::string what = fmt::format("fd {}: re-create deleted file {}", o.first_fd, o.file.path);
  std::string dir = std::filesystem::path(o.file.path).parent_path().string();
  WPCKPT_TRY_ASSIGN(UniqueFd tmp, unnamed_file(dir, o.ghost_mode));
  size_t done = 0;
  while (done < o.data.size()) {
    ssize_t n = ::pwrite(tmp.get(), o.data.data() + done, o.data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("write", what);
    done += static_cast<size_t>(n);
  }
  // The process's own access mode and flags: reopened through the
  // descriptor (the file has no name), checked against its mode as the owner.
  // O_NOFOLLOW (sqlite opens its temporary files with it) would refuse the
  // /proc/self/fd link itself with ELOOP; it only mattered at the first open.
  std::string self = fmt::format("/proc/self/fd/{}", tmp.get());
  const int reopen_flags = o.flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_TMPFILE | O_NOFOLLOW | O_DIRECTORY);
  UniqueFd fd(::open(self.c_str(), reopen_flags | O_CLOEXEC | O_NOCTTY));
  if (!fd) return errno_error("reopen", what);
  return fd;
}

}  // namespace wpckpt::fds
