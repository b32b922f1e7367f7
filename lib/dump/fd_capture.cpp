#include "lib/dump/fd_capture.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include "lib/base/parse_number.hpp"
#include "lib/base/uapi/agent_state.hpp"
#include "lib/dump/process_capture.hpp"
#include "lib/fds/fd_handler.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::dump {
namespace {

constexpr int kKcmpFile = 0;

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

// The agent's descriptors go to `tracking`, not to `fds` (restore re-creates them).
bool is_agent_fd(const std::string& link, int fd, nlohmann::json& tracking) {
  if (link.find("userfaultfd") != std::string::npos) {
    tracking["uffd_fd"] = fd;
    return true;
  }
  if (link == uapi::kAgentMemfdLink) {
    tracking["agent_state_fd"] = fd;
    return true;
  }
  return false;
}

// Flags and position of any descriptor, from fdinfo.
Result<void> common_fields(const fds::FdInfo& info, state::FdState& f) {
  WPCKPT_TRY_ASSIGN(int flags, info.number<int>("flags", 8));
  f.cloexec = (flags & O_CLOEXEC) != 0;
  f.flags = flags & ~O_CLOEXEC;
  WPCKPT_TRY_ASSIGN(f.pos, info.number<uint64_t>("pos"));
  return ok();
}

// The open file description: shared with an earlier descriptor (dup, fork) or new.
void assign_object_id(pid_t pid, state::FdState& f, const std::vector<state::FdState>& fds,
                      std::vector<size_t>& group_rep) {
  for (size_t rep : group_rep) {
    if (::syscall(SYS_kcmp, pid, pid, kKcmpFile, fds[rep].fd, f.fd) == 0) {
      f.object_id = fds[rep].object_id;
      return;
    }
  }
  f.object_id = group_rep.size() + 1;
  group_rep.push_back(fds.size());
}

}  // namespace

Result<FdCapture> capture_fds(pid_t pid, const fds::CaptureOptions& options) {
  FdCapture out;
  WPCKPT_TRY_ASSIGN(auto numbers, list_fds(pid));
  std::vector<size_t> group_rep;  // index into out.fds of each open file description's first fd
  out.network_lock = netlock::NetworkLock(pid);
  fds::CaptureSoFar so_far{out.fds, out.files, out.warnings, out.repaired, out.network_lock};
  fds::TargetFds target(pid);
  for (int fd : numbers) {
    fds::FdSource src;
    src.options = &options;
    src.pid = pid;
    src.fd = fd;
    src.target = &target;
    src.proc_path = fmt::format("/proc/{}/fd/{}", pid, fd);
    auto link_or = read_link(src.proc_path);
    if (!link_or && link_or.error().err == ENOENT) continue;  // closed meanwhile (cannot happen frozen)
    WPCKPT_TRY_ASSIGN(src.link, std::move(link_or));
    if (is_agent_fd(src.link, fd, out.tracking)) continue;
    const std::string info_path = fmt::format("/proc/{}/fdinfo/{}", pid, fd);
    WPCKPT_TRY_ASSIGN(std::string info_text, read_text(info_path));
    const fds::FdInfo info = fds::FdInfo::parse(info_text, info_path);
    src.info = &info;
    state::FdState f;
    f.fd = fd;
    WPCKPT_TRY(common_fields(info, f));
    if (src.link.rfind("socket:", 0) != 0 && ::stat(src.proc_path.c_str(), &src.st) != 0)
      return errno_error("stat", src.proc_path);
    WPCKPT_TRY_ASSIGN(f.kind, fds::classify(src));
    WPCKPT_TRY(fds::handler_for(f.kind).capture(src, f, so_far));
    assign_object_id(pid, f, out.fds, group_rep);
    out.fds.push_back(std::move(f));
  }
  return out;
}

}  // namespace wpckpt::dump
