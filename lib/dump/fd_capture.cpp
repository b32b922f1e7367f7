#include "lib/dump/fd_capture.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "lib/base/parse_number.hpp"
#include "lib/base/uapi/agent_state.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/dump/process_capture.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::dump {
namespace {

constexpr const char kDeleted[] = " (deleted)";
constexpr int kKcmpFile = 0;
constexpr size_t kMaxMemfdBytes = size_t{1} << 30;

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<std::vector<int>> list_fds(pid_t pid) {
  std::string path = fmt::format("/proc/{}/fd", pid);
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return errno_error("open", path);
  std::vector<int> fds;
  while (dirent* e = ::readdir(dir))
    if (auto fd = parse_number<int>(e->d_name)) fds.push_back(*fd);  // skips "." and ".."
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

// /proc/PID/fdinfo/N as key -> value (first occurrence), plus the raw lines.
struct FdInfo {
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<std::string> lines;
  std::string where;  // "/proc/PID/fdinfo/N", for errors
  std::string get(const std::string& key) const {
    for (const auto& [k, v] : fields)
      if (k == key) return v;
    return {};
  }
  bool has(const std::string& key) const {
    return std::any_of(fields.begin(), fields.end(), [&](const auto& f) { return f.first == key; });
  }
  // A numeric field; missing or malformed is an error naming the file and the key.
  template <typename T>
  Result<T> number(const std::string& key, int base = 10) const {
    if (!has(key)) return make_error(EINVAL, "parse", where + " (no '" + key + "' line)");
    return parse_number<T>(get(key), base, where + " " + key);
  }
};

Result<FdInfo> read_fdinfo(pid_t pid, int fd) {
  FdInfo info;
  info.where = fmt::format("/proc/{}/fdinfo/{}", pid, fd);
  WPCKPT_TRY_ASSIGN(std::string text, read_text(info.where));
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    info.lines.push_back(line);
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    info.fields.emplace_back(line.substr(0, colon), value);
  }
  return info;
}

state::FileIdentity identity(const std::string& link, const struct stat& st) {
  state::FileIdentity id;
  id.deleted = ends_with(link, kDeleted);
  id.path = id.deleted ? link.substr(0, link.size() - sizeof kDeleted + 1) : link;
  id.dev = st.st_dev;
  id.inode = st.st_ino;
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

bool is_tty(dev_t rdev) {
  unsigned maj = major(rdev);
  return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143);
}

// Unread bytes of a pipe or FIFO, without consuming them: a new read end
// opened through /proc, tee(2) into a pipe of our own, read from that.
Result<std::vector<uint8_t>> peek_pipe(pid_t pid, int fd) {
  std::string path = fmt::format("/proc/{}/fd/{}", pid, fd);
  UniqueFd rd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!rd) return errno_error("open", path);
  int size = ::fcntl(rd.get(), F_GETPIPE_SZ);
  int ours[2];
  if (::pipe2(ours, O_CLOEXEC | O_NONBLOCK) != 0) return errno_error("pipe2");
  UniqueFd our_rd(ours[0]), our_wr(ours[1]);
  if (size > 0) ::fcntl(our_wr.get(), F_SETPIPE_SZ, size);
  std::vector<uint8_t> data;
  ssize_t n = ::tee(rd.get(), our_wr.get(), static_cast<size_t>(size > 0 ? size : 65536), SPLICE_F_NONBLOCK);
  if (n < 0 && errno != EAGAIN) return errno_error("tee", path);
  if (n > 0) {
    data.resize(static_cast<size_t>(n));
    size_t got = 0;
    while (got < data.size()) {
      ssize_t r = ::read(our_rd.get(), data.data() + got, data.size() - got);
      if (r <= 0) return errno_error("read", "copy of " + path);
      got += static_cast<size_t>(r);
    }
  }
  return data;
}

Result<std::vector<uint8_t>> read_whole(pid_t pid, int fd, uint64_t size) {
  std::string path = fmt::format("/proc/{}/fd/{}", pid, fd);
  if (size > kMaxMemfdBytes)
    return make_error(EFBIG, "capture memfd", fmt::format("fd {} of process {} ({} bytes)", fd, pid, size));
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return errno_error("open", path);
  std::vector<uint8_t> data(size);
  size_t got = 0;
  while (got < size) {
    ssize_t r = ::pread(in.get(), data.data() + got, size - got, static_cast<off_t>(got));
    if (r < 0) return errno_error("read", path);
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  data.resize(got);
  return data;
}

Error unsupported(pid_t pid, int fd, const std::string& kind, const std::string& link) {
  return make_error(EOPNOTSUPP, "dump", fmt::format("fd {} of process {} is a {} ({})", fd, pid, kind, link))
      .with_hint(fmt::format("{}s are not supported yet: close fd {} in the process before dumping it", kind, fd));
}

// Kind-specific details from fdinfo.
Result<void> anon_details(const std::string& kind, const FdInfo& info, state::FdState& f) {
  if (kind == "eventfd") {
    WPCKPT_TRY_ASSIGN(f.details["count"], info.number<uint64_t>("eventfd-count", 16));
    f.details["semaphore"] = info.get("eventfd-semaphore") == "1";
  } else if (kind == "signalfd") {
    WPCKPT_TRY_ASSIGN(f.details["sigmask"], info.number<uint64_t>("sigmask", 16));
  } else if (kind == "timerfd") {
    WPCKPT_TRY_ASSIGN(f.details["clockid"], info.number<int>("clockid"));
    WPCKPT_TRY_ASSIGN(f.details["ticks"], info.number<uint64_t>("ticks"));
    WPCKPT_TRY_ASSIGN(f.details["settime_flags"], info.number<int>("settime flags", 8));
    for (const char* key : {"it_value", "it_interval"}) {
      long long sec = 0, nsec = 0;
      if (std::sscanf(info.get(key).c_str(), "(%lld, %lld)", &sec, &nsec) != 2)
        return make_error(EINVAL, "parse", info.where + " " + key + " ('" + info.get(key) + "')");
      f.details[key] = {sec, nsec};
    }
  } else if (kind == "epoll") {
    nlohmann::json targets = nlohmann::json::array();
    for (const std::string& line : info.lines) {
      if (!starts_with(line, "tfd:")) continue;
      int tfd = 0;
      unsigned events = 0;
      unsigned long long data = 0;
      if (std::sscanf(line.c_str(), "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
        return make_error(EINVAL, "parse", info.where + " ('" + line + "')");
      targets.push_back({{"fd", tfd}, {"events", events}, {"data", data}});
    }
    f.details["targets"] = targets;
  }
  return ok();
}

}  // namespace

Result<FdCapture> capture_fds(pid_t pid) {
  FdCapture out;
  WPCKPT_TRY_ASSIGN(auto fds, list_fds(pid));
  std::vector<size_t> group_rep;  // index into out.fds of each open file description's first fd
  for (int fd : fds) {
    std::string fd_path = fmt::format("/proc/{}/fd/{}", pid, fd);
    auto link_or = read_link(fd_path);
    if (!link_or && link_or.error().err == ENOENT) continue;  // closed meanwhile (cannot happen frozen)
    WPCKPT_TRY_ASSIGN(std::string link, std::move(link_or));
    if (link.find("userfaultfd") != std::string::npos) {
      out.tracking["uffd_fd"] = fd;
      continue;
    }
    if (link == uapi::kAgentMemfdLink) {
      out.tracking["agent_state_fd"] = fd;
      continue;
    }
    WPCKPT_TRY_ASSIGN(FdInfo info, read_fdinfo(pid, fd));
    state::FdState f;
    f.fd = fd;
    WPCKPT_TRY_ASSIGN(int flags, info.number<int>("flags", 8));
    f.cloexec = (flags & O_CLOEXEC) != 0;
    f.flags = flags & ~O_CLOEXEC;
    WPCKPT_TRY_ASSIGN(f.pos, info.number<uint64_t>("pos"));
    WPCKPT_TRY_ASSIGN(f.details["mnt_id"], info.number<int>("mnt_id"));

    if (starts_with(link, "socket:")) return unsupported(pid, fd, "socket", link);
    struct stat st {};
    if (::stat(fd_path.c_str(), &st) != 0) return errno_error("stat", fd_path);
    if (starts_with(link, "anon_inode:")) {
      std::string name = link.substr(11);
      if (!name.empty() && name.front() == '[') name = name.substr(1, name.size() - 2);
      if (name == "eventpoll") name = "epoll";
      if (name != "eventfd" && name != "epoll" && name != "signalfd" && name != "timerfd")
        return unsupported(pid, fd, name, link);
      f.kind = name;
      WPCKPT_TRY(anon_details(name, info, f));
    } else if (starts_with(link, "pipe:") || S_ISFIFO(st.st_mode)) {
      f.kind = starts_with(link, "pipe:") ? "pipe" : "fifo";
      if (f.kind == "fifo") f.file = identity(link, st);
      f.details["pipe_ino"] = static_cast<uint64_t>(st.st_ino);
      f.details["end"] = (f.flags & O_ACCMODE) == O_WRONLY ? "write" : "read";
      bool first_of_pipe = std::none_of(out.fds.begin(), out.fds.end(), [&](const state::FdState& o) {
        return o.details.value("pipe_ino", uint64_t{0}) == static_cast<uint64_t>(st.st_ino) &&
               o.details.contains("data");
      });
      if (first_of_pipe) {
        WPCKPT_TRY_ASSIGN(auto data, peek_pipe(pid, fd));
        f.details["data"] = state::to_hex(data);
      }
    } else if (starts_with(link, "/memfd:")) {
      f.kind = "memfd";
      f.file = identity(link, st);
      f.details["name"] = link.substr(7, link.size() - 7 - (ends_with(link, kDeleted) ? sizeof kDeleted - 1 : 0));
      std::string file_name = fmt::format("memfd-{}.bin", st.st_ino);
      bool seen = std::any_of(out.files.begin(), out.files.end(), [&](const auto& p) { return p.first == file_name; });
      if (!seen) {
        WPCKPT_TRY_ASSIGN(auto data, read_whole(pid, fd, static_cast<uint64_t>(st.st_size)));
        out.files.emplace_back(file_name, std::move(data));
      }
      f.details["contents_file"] = file_name;
      UniqueFd probe(::open(fd_path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!probe) return errno_error("open", fd_path);
      int seals = ::fcntl(probe.get(), F_GET_SEALS);
      if (seals < 0) return errno_error("fcntl(F_GET_SEALS)", fd_path);
      f.details["seals"] = seals;
    } else if (!link.empty() && link[0] == '/') {
      f.file = identity(link, st);
      if (S_ISDIR(st.st_mode)) f.kind = "dir";
      else if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) f.kind = "devnull";
      else if (S_ISCHR(st.st_mode) && is_tty(st.st_rdev)) f.kind = "tty";
      else if (S_ISCHR(st.st_mode)) f.kind = "chardev";
      else if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) f.kind = "file";
      else return unsupported(pid, fd, "special file", link);
      if (S_ISCHR(st.st_mode)) f.details["rdev"] = {major(st.st_rdev), minor(st.st_rdev)};
      // Replaced: the path now names another file (or nothing).
      struct stat now {};
      bool replaced = !f.file->deleted && (::stat(f.file->path.c_str(), &now) != 0 || now.st_dev != st.st_dev ||
                                           now.st_ino != st.st_ino);
      if (replaced) f.details["replaced"] = true;
    } else {
      return unsupported(pid, fd, link.substr(0, link.find(':')), link);
    }
    // The open file description: shared with an earlier fd (dup) or new.
    f.object_id = 0;
    for (size_t rep : group_rep) {
      const state::FdState& o = out.fds[rep];
      if (::syscall(SYS_kcmp, pid, pid, kKcmpFile, o.fd, fd) == 0) {
        f.object_id = o.object_id;
        break;
      }
    }
    if (f.object_id == 0) {
      f.object_id = group_rep.size() + 1;
      group_rep.push_back(out.fds.size());
    }
    out.fds.push_back(std::move(f));
  }
  return out;
}

}  // namespace wpckpt::dump
