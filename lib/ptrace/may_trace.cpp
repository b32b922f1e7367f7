#include "lib/ptrace/may_trace.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <string>

#include "lib/base/privilege.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/probe/capabilities.hpp"

namespace wpckpt::ptrace {

namespace {

// Real, effective and saved ids from a "Uid:" or "Gid:" line.
using Ids = std::array<unsigned, 3>;

bool parse_ids(const std::string& text, const char* key, Ids& out) {
  size_t pos = text.find(std::string("\n") + key);
  if (pos == std::string::npos) return false;
  const char* p = text.data() + pos + 1 + std::char_traits<char>::length(key);
  const char* end = text.data() + text.size();
  for (unsigned& id : out) {
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    auto [next, ec] = std::from_chars(p, end, id);
    if (ec != std::errc()) return false;
    p = next;
  }
  return true;
}

Result<std::string> read_status(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    Error e = errno_error("open", path);
    if (e.err == ENOENT) return make_error(ESRCH, "find process", std::to_string(pid)).with_hint("check the pid given with -t");
    return e;
  }
  std::string text = "\n";  // so that the first line is found like the others
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read", path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

std::string ids_text(const Ids& ids) {
  return std::to_string(ids[0]) + "/" + std::to_string(ids[1]) + "/" + std::to_string(ids[2]);
}

constexpr const char* kHint =
    "checkpoint your own processes; another user's process needs root or CAP_SYS_PTRACE of your own "
    "(capabilities that a setuid or setcap copy of wpckpt grants do not count)";

}  // namespace

Result<void> check_may_trace(pid_t pid) {
  if (pid <= 0) return make_error(ESRCH, "find process", std::to_string(pid)).with_hint("check the pid given with -t");
  WPCKPT_TRY_ASSIGN(std::string status, read_status(pid));
  Ids uids{}, gids{};
  if (!parse_ids(status, "Uid:", uids) || !parse_ids(status, "Gid:", gids))
    return make_error(EPROTO, "read the credentials of process", std::to_string(pid));
  if (!exec_raised_privileges() && probe::has_effective_capability(uapi::kCapSysPtrace)) return ok();

  const uid_t ruid = ::getuid();
  const gid_t rgid = ::getgid();
  const std::string who = "process " + std::to_string(pid);
  for (unsigned u : uids)
    if (u != ruid)
      return make_error(EPERM, "checkpoint " + who,
                        "(uids " + ids_text(uids) + "): it does not belong to the user who runs wpckpt (uid " +
                            std::to_string(ruid) + ")")
          .with_hint(kHint);
  for (unsigned g : gids)
    if (g != rgid)
      return make_error(EPERM, "checkpoint " + who,
                        "(gids " + ids_text(gids) + "): its groups differ from the real group of the user who runs "
                        "wpckpt (gid " + std::to_string(rgid) + "), as after a setgid exec")
          .with_hint(kHint);
  // /proc/PID belongs to root while the process is not dumpable (a setuid
  // exec, prctl(PR_SET_DUMPABLE, 0)): the kernel then refuses ptrace too.
  struct stat st {};
  const std::string dir = "/proc/" + std::to_string(pid);
  if (::stat(dir.c_str(), &st) != 0) return errno_error("stat", dir);
  if (st.st_uid != ruid)
    return make_error(EPERM, "checkpoint " + who, "(not dumpable: it ran a setuid program or turned dumping off)")
        .with_hint(kHint);
  return ok();
}

}  // namespace wpckpt::ptrace
