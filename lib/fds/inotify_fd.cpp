// inotify: the watches, from fdinfo ("inotify wd:N ino:I sdev:D mask:M ...
// f_handle:H", numbers in hex). The kernel names each watched inode by a
// file handle only; the dump turns it into a path with open_by_handle_at
// (CAP_DAC_READ_SEARCH: root) on the file system's mount, and checks that
// the path reaches that inode. Restore, in wpckpt as the image's owner
// (prepare()): inotify_init1, then each watch added again on its path with
// its mask and the same watch descriptor (the kernel hands them out
// cyclically, so a lower one is added and removed until the next is the
// recorded one). Events queued at the dump are not saved (said in the dump's
// warnings): the program sees the files as they are, not their history.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>

#include "lib/fds/fd_handler.hpp"
#include "lib/state/json_fields.hpp"

namespace wpckpt::fds {
namespace {

// The mask bits a watch may carry (inotify_mark_user_mask); anything else in
// an image is refused.
constexpr uint32_t kWatchBits = IN_ALL_EVENTS | IN_EXCL_UNLINK | IN_ONESHOT | IN_ONLYDIR;
// Adding and removing a watch to reach a recorded watch descriptor: bounded.
constexpr int kMaxWdSteps = 1 << 16;

struct RecordedWatch {
  int wd = 0;
  uint64_t ino = 0;
  uint32_t sdev = 0;  // the kernel's encoding: major << 20 | minor
  uint32_t mask = 0;
  int handle_type = 0;
  std::vector<uint8_t> handle;
};

Result<RecordedWatch> parse_watch(const std::string& line, const std::string& where) {
  RecordedWatch w;
  std::istringstream words(line.substr(8));  // after "inotify "
  std::string handle_hex;
  for (std::string word; words >> word;) {
    auto colon = word.find(':');
    if (colon == std::string::npos) continue;
    std::string key = word.substr(0, colon), value = word.substr(colon + 1);
    auto hex = [&](auto& out) -> Result<void> {
      WPCKPT_TRY_ASSIGN(out, parse_number<std::remove_reference_t<decltype(out)>>(value, 16, where + " " + key));
      return ok();
    };
    if (key == "wd") {
      WPCKPT_TRY_ASSIGN(w.wd, parse_number<int>(value, 10, where + " wd"));
    } else if (key == "ino") WPCKPT_TRY(hex(w.ino));
    else if (key == "sdev") WPCKPT_TRY(hex(w.sdev));
    else if (key == "mask") WPCKPT_TRY(hex(w.mask));
    else if (key == "fhandle-type") WPCKPT_TRY(hex(w.handle_type));
    else if (key == "f_handle") handle_hex = value;
  }
  for (size_t i = 0; i + 1 < handle_hex.size(); i += 2) {
    WPCKPT_TRY_ASSIGN(uint8_t byte, parse_number<uint8_t>(handle_hex.substr(i, 2), 16, where + " f_handle"));
    w.handle.push_back(byte);
  }
  if (w.wd <= 0 || w.handle.empty()) return make_error(EINVAL, "parse", where + ": inotify line '" + line + "'");
  return w;
}

// The mount point of the file system `sdev` in the process's mount table.
Result<std::string> mount_point_of(pid_t pid, uint32_t sdev) {
  const std::string path = fmt::format("/proc/{}/mountinfo", pid);
  std::ifstream in(path);
  if (!in) return errno_error("open", path);
  const std::string want = fmt::format("{}:{}", sdev >> 20, sdev & 0xfffff);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point;
    fields >> id >> parent >> devno >> root >> point;
    if (devno == want) return point;
  }
  return make_error(ENOENT, "find the mount of device", want + " in " + path);
}

// The path of the watched inode, checked against it.
Result<std::string> path_of(const FdSource& src, const RecordedWatch& w) {
  const std::string what = fmt::format("fd {} of process {}: inotify watch {}", src.fd, src.pid, w.wd);
  WPCKPT_TRY_ASSIGN(std::string point, mount_point_of(src.pid, w.sdev));
  UniqueFd mount(::open(point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));  // open_by_handle_at refuses an O_PATH one
  if (!mount) return errno_error("open the mount point " + point + " for", what);
  std::vector<uint8_t> buf(sizeof(file_handle) + w.handle.size());
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = static_cast<unsigned>(w.handle.size());
  fh->handle_type = w.handle_type;
  std::copy(w.handle.begin(), w.handle.end(), fh->f_handle);
  UniqueFd file(::open_by_handle_at(mount.get(), fh, O_PATH | O_CLOEXEC));
  if (!file) {
    const int err = errno;
    return make_error(err, "find the watched file of", what)
        .with_hint(err == EPERM ? "naming a watched file needs CAP_DAC_READ_SEARCH (open_by_handle_at): dump as root"
                                : "the watched file was deleted: the watch cannot be restored; remove it first");
  }
  char link[PATH_MAX + 1];
  const std::string self = fmt::format("/proc/self/fd/{}", file.get());
  ssize_t n = ::readlink(self.c_str(), link, PATH_MAX);
  if (n < 0) return errno_error("readlink", self);
  const std::string path(link, static_cast<size_t>(n));
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 || st.st_ino != w.ino)
    return make_error(ENOENT, "find the watched file of", what + " (" + path + " is another file now)")
        .with_hint("the watched file has no path that reaches it (unlinked or moved under a hidden directory)");
  return path;
}

class InotifyHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar& so_far) const override {
    nlohmann::json watches = nlohmann::json::array();
    for (const auto& line : src.info->lines) {
      if (line.rfind("inotify ", 0) != 0) continue;
      WPCKPT_TRY_ASSIGN(RecordedWatch w, parse_watch(line, src.info->where));
      WPCKPT_TRY_ASSIGN(std::string path, path_of(src, w));
      watches.push_back({{"wd", w.wd}, {"path", path}, {"mask", w.mask}, {"ino", w.ino}});
    }
    f.details["watches"] = std::move(watches);
    auto copy = src.target->copy(src.fd);
    int queued = 0;
    if (copy && ::ioctl(copy->get(), FIONREAD, &queued) == 0 && queued > 0)
      so_far.warnings.push_back(fmt::format("fd {}: {} bytes of inotify events queued are not saved", src.fd, queued));
    return ok();
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader&, FdObject& o) const override {
    const std::string where = "fd " + std::to_string(f.fd) + " details.watches";
    auto it = f.details.find("watches");
    if (it == f.details.end() || !it->is_array()) return state::field_error(where, "must be an array");
    for (const auto& j : *it) {
      InotifyWatch w;
      WPCKPT_TRY(state::read_json(j.value("wd", nlohmann::json()), w.wd, where + ".wd"));
      WPCKPT_TRY(state::read_json(j.value("path", nlohmann::json()), w.path, where + ".path"));
      WPCKPT_TRY(state::read_json(j.value("mask", nlohmann::json()), w.mask, where + ".mask"));
      WPCKPT_TRY(state::read_json(j.value("ino", nlohmann::json()), w.ino, where + ".ino"));
      if (w.wd <= 0 || w.wd > kMaxWdSteps) return state::field_error(where + ".wd", "is out of range");
      if (w.path.empty() || w.path[0] != '/') return state::field_error(where + ".path", "must be absolute");
      if ((w.mask & ~kWatchBits) != 0 || (w.mask & IN_ALL_EVENTS) == 0)
        return state::field_error(where + ".mask", "is not an inotify watch mask");
      o.watches.push_back(std::move(w));
    }
    std::sort(o.watches.begin(), o.watches.end(), [](auto& a, auto& b) { return a.wd < b.wd; });
    for (size_t i = 1; i < o.watches.size(); ++i)
      if (o.watches[i].wd == o.watches[i - 1].wd) return state::field_error(where, "has a watch descriptor twice");
    o.flags = f.flags & O_NONBLOCK;
    return ok();
  }

  Result<void> prepare(FdObject& o, std::vector<UniqueFd>& held, int floor) const override {
    const std::string what = "fd " + std::to_string(o.first_fd) + " (inotify)";
    UniqueFd fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!fd) return errno_error("inotify_init1", what);  // non-blocking until drained below
    for (const auto& w : o.watches) WPCKPT_TRY(add_watch(fd.get(), w, what));
    // The IN_IGNORED events of the watches removed to reach the recorded
    // descriptors are ours, not the program's: drained before it gets the fd.
    char events[4096];
    while (::read(fd.get(), events, sizeof events) > 0) {
    }
    WPCKPT_TRY(set_nonblock_as_dumped(fd.get(), o.flags, what));
    WPCKPT_TRY_ASSIGN(o.inherit_fd, hold_above(std::move(fd), floor, held, what));
    return ok();
  }

  int32_t create(FdObject&) const override {
    errno = EINVAL;  // created by prepare(): the child only duplicates it
    return kStepOpen;
  }

 private:
  // The watch, at its recorded descriptor, on the same inode.
  static Result<void> add_watch(int fd, const InotifyWatch& w, const std::string& what) {
    const std::string where = fmt::format("{}: watch {} on {}", what, w.wd, w.path);
    struct stat st{};
    if (::lstat(w.path.c_str(), &st) != 0) return errno_error("inotify_add_watch", where);
    if (st.st_ino != w.ino)
      return make_error(ENOENT, "inotify_add_watch", where + " (another file than at the dump)")
          .with_hint("the watched file was replaced since the dump: put it back to restore");
    const uint32_t mask = w.mask | IN_DONT_FOLLOW;  // the recorded path is the watched inode itself
    int wd = ::inotify_add_watch(fd, w.path.c_str(), mask);
    for (int step = 0; wd > 0 && wd < w.wd && step < kMaxWdSteps; ++step) {
      ::inotify_rm_watch(fd, wd);
      wd = ::inotify_add_watch(fd, w.path.c_str(), mask);
    }
    if (wd < 0) return errno_error("inotify_add_watch", where);
    if (wd != w.wd) return make_error(EINVAL, "inotify_add_watch", where + fmt::format(" (got descriptor {})", wd));
    return ok();
  }
};

constinit const InotifyHandler kInotify;

}  // namespace

const FdHandler& inotify_handler() { return kInotify; }

}  // namespace wpckpt::fds
