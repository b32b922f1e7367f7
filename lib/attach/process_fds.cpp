#include "lib/attach/process_fds.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "lib/base/parse_number.hpp"

namespace wpckpt::attach {
namespace {

constexpr int kHighestWanted = 1024;  // a larger table costs memory in the process (8 bytes and more per slot)

// The soft "Max open files" of /proc/PID/limits.
Result<int> nofile_soft_limit(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/limits";
  std::ifstream in(path);
  if (!in) return errno_error("open", path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(sizeof "Max open files" - 1));
    std::string soft;
    fields >> soft;
    if (soft == "unlimited") return kHighestWanted;
    auto n = parse_number<long>(soft, 10, path);
    if (!n) return std::move(n).error();
    return static_cast<int>(std::min<long>(*n, kHighestWanted));
  }
  return make_error(EPROTO, "find \"Max open files\"", path);
}

}  // namespace

std::string fd_target(pid_t pid, int fd) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  char buf[512];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

Result<std::vector<int>> open_fds(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    Error e = errno_error("open", path);
    if (e.err == ENOENT) e.hint = "no process " + std::to_string(pid);
    return e;
  }
  std::vector<int> fds;
  while (dirent* e = ::readdir(dir))
    if (auto fd = parse_number<int>(e->d_name)) fds.push_back(*fd);
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

Result<int> high_free_base(pid_t pid) {
  WPCKPT_TRY_ASSIGN(int limit, nofile_soft_limit(pid));
  WPCKPT_TRY_ASSIGN(std::vector<int> used, open_fds(pid));
  int found = 0;
  for (int fd = limit - 1; fd > 2; --fd) {
    if (std::binary_search(used.begin(), used.end(), fd)) continue;
    if (++found == 2) return fd;
  }
  return 0;
}

}  // namespace wpckpt::attach
