#include "lib/dump/unsupported_state.hpp"

#include <dirent.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <optional>
#include <sstream>

#include "lib/base/log.hpp"
#include "lib/base/parse_number.hpp"
#include "lib/dump/process_capture.hpp"
#include "lib/dump/sysv_shm_capture.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {
namespace {

constexpr std::string_view kDeleted = " (deleted)";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string proc(pid_t pid, std::string_view what) { return fmt::format("/proc/{}/{}", pid, what); }

Error refused(std::string_view verb, std::string what, std::string hint) {
  return make_error(EOPNOTSUPP, std::string(verb), std::move(what)).with_hint(std::move(hint));
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Numeric entries of a /proc directory (pids, tids, fds), sorted.
Result<std::vector<int>> numeric_entries(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return errno_error("open", path);
  std::vector<int> out;
  while (dirent* e = ::readdir(dir))
    if (auto n = parse_number<int>(e->d_name)) out.push_back(*n);  // skips "." and ".."
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

// "(comm) S ppid ...": comm, the state letter and the parent of a process; empty if it is gone.
struct StatHead {
  std::string comm;
  char state = '?';
  pid_t ppid = 0;
};
std::optional<StatHead> stat_head(pid_t pid) {
  auto text = read_text(proc(pid, "stat"));
  if (!text) return std::nullopt;
  size_t open = text->find('('), close = text->rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= text->size()) return std::nullopt;
  StatHead h;
  h.comm = text->substr(open + 1, close - open - 1);
  std::istringstream rest(text->substr(close + 2));
  std::string state, ppid;
  rest >> state >> ppid;
  if (state.empty()) return std::nullopt;
  h.state = state[0];
  h.ppid = parse_number<pid_t>(ppid).ok() ? *parse_number<pid_t>(ppid) : 0;
  return h;
}

constexpr const char* kOneChild = "a child process:";
constexpr const char* kChildren = "child processes:";

Result<void> refuse_children(pid_t pid, std::string_view verb) {
  WPCKPT_TRY_ASSIGN(auto children, children_of(pid));
  if (children.empty()) return ok();
  std::vector<std::string> named;
  for (pid_t c : children) {
    auto h = stat_head(c);
    if (!h) {
      named.push_back(std::to_string(c));
      continue;
    }
    named.push_back(fmt::format("{} ({}{})", c, h->comm, h->state == 'Z' ? ", zombie: exited, not waited for" : ""));
  }
  return refused(verb,
                 fmt::format("process {} has {} {}", pid, children.size() == 1 ? kOneChild : kChildren,
                             joined(named)),
                 "a child appeared after the dump had started as one of a single process; run it again: a dump of "
                 "a process with children covers the whole tree. Nothing was stopped");
}

// A deleted file whose contents the dump does not save: not a regular file,
// or larger than the ghost limit.
bool too_big_a_ghost(pid_t pid, int fd, uint64_t ghost_limit, std::string& why) {
  struct stat st{};
  if (::stat(proc(pid, "fd/" + std::to_string(fd)).c_str(), &st) != 0) return false;  // closed meanwhile
  if (!S_ISREG(st.st_mode)) {
    why = "not a regular file";
    return true;
  }
  if (static_cast<uint64_t>(st.st_size) <= ghost_limit) return false;
  why = fmt::format("{} bytes, above the ghost limit of {}", st.st_size, ghost_limit);
  return true;
}

// Descriptors of deleted files too big to save, and file locks: any without
// --file-locks, those through other than a file or directory with it.
Result<void> refuse_fds(pid_t pid, std::string_view verb, uint64_t ghost_limit, bool file_locks) {
  WPCKPT_TRY_ASSIGN(auto fds, numeric_entries(proc(pid, "fd")));
  std::vector<std::string> deleted, locks;
  for (int fd : fds) {
    auto link = read_link(proc(pid, "fd/" + std::to_string(fd)));
    if (!link) {
      if (link.error().err == ENOENT) continue;  // closed meanwhile
      return std::move(link).error();
    }
    // memfds always show " (deleted)": their contents are saved (fd_capture).
    std::string why;
    if (starts_with(*link, "/") && !starts_with(*link, "/memfd:") && ends_with(*link, kDeleted) &&
        too_big_a_ghost(pid, fd, ghost_limit, why))
      deleted.push_back(fmt::format("fd {} ({}): {}", fd, *link, why));
    const bool lockable = file_locks && starts_with(*link, "/") && !starts_with(*link, "/memfd:");
    auto info = read_text(proc(pid, "fdinfo/" + std::to_string(fd)));
    if (!info || lockable) continue;  // closed meanwhile, or its locks are recorded
    std::istringstream in(*info);
    for (std::string line; std::getline(in, line);) {
      if (!starts_with(line, "lock:")) continue;
      // "lock:\t1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"
      std::istringstream words(line.substr(5));
      std::string id, type, mode, access;
      words >> id >> type >> mode >> access;
      locks.push_back(fmt::format("fd {} ({}) holds a {} {} lock", fd, link ? *link : "?", type, access));
    }
  }
  if (!deleted.empty()) {
    return refused(verb,
                   fmt::format("process {} has {} open: {}", pid,
                               deleted.size() == 1 ? "a descriptor of a deleted file" : "descriptors of deleted files",
                               joined(deleted)),
                   "the contents of a deleted regular file are saved up to --ghost-limit (default 1 MiB, as "
                   "CRIU): raise it, or close the descriptor in the process (e.g. let it finish the work that uses "
                   "the temporary file). Nothing was stopped");
  }
  if (!locks.empty()) {
    return refused(verb, fmt::format("process {}: {}", pid, joined(locks)),
                   file_locks ? "locks on pipes, sockets and memfds are not restored: dump the process when it holds "
                                "none. Nothing was stopped"
                              : "pass --file-locks to dump and restore them (as CRIU), or dump the process when it "
                                "holds none. Nothing was stopped");
  }
  return ok();
}

Result<void> refuse_deleted_paths(pid_t pid, std::string_view verb) {
  for (const char* what : {"cwd", "root", "exe"}) {
    auto link = read_link(proc(pid, what));
    if (!link) continue;  // exe of a kernel thread, or gone: the dump itself fails clearly
    if (!ends_with(*link, kDeleted)) continue;
    std::string name = std::string(what) == "cwd"    ? "working directory"
                       : std::string(what) == "root" ? "root directory"
                                                     : "executable";
    std::string hint = "restore needs it where it was: dump the process while its " + name + " exists";
    if (name == "executable") hint += " (a program whose executable was upgraded must be restarted first)";
    return refused(verb, fmt::format("the {} of process {} was deleted: {}", name, pid, *link),
                   hint + ". Nothing was stopped");
  }
  return ok();
}

// Mappings of kernel objects that restore would turn into plain memory.
Result<void> refuse_kernel_object_mappings(pid_t pid, std::string_view verb, const std::vector<tracker::Vma>* areas) {
  std::vector<tracker::Vma> read_here;
  WPCKPT_TRY_ASSIGN(const std::vector<tracker::Vma>* given_or_read, tracker::given_or_read_maps(pid, areas, read_here));
  const std::vector<tracker::Vma>& vmas = *given_or_read;
  WPCKPT_TRY(refuse_partial_sysv_attachments(pid, verb, vmas));
  for (const auto& v : vmas) {
    std::string where = fmt::format("0x{:x}-0x{:x}", v.start, v.end);
    if (starts_with(v.name, "/[aio]")) {
      return refused(verb, fmt::format("process {} has an asynchronous I/O context (io_setup) at {}", pid, where),
                     "AIO contexts are not restored yet: dump the process once it has destroyed the context "
                     "(io_destroy). Nothing was stopped");
    }
    if (starts_with(v.name, "anon_inode:")) {
      return refused(verb, fmt::format("process {} maps a kernel object at {} ({})", pid, where, v.name),
                     "mappings of kernel objects (io_uring rings, perf buffers, ...) are not restored yet: dump the "
                     "process once it has unmapped it. Nothing was stopped");
    }
  }
  return ok();
}

Result<void> refuse_seccomp(pid_t pid, std::string_view verb) {
  WPCKPT_TRY_ASSIGN(auto tids, numeric_entries(proc(pid, "task")));
  for (int tid : tids) {
    auto status = read_text(proc(pid, fmt::format("task/{}/status", tid)));
    if (!status) continue;  // exited meanwhile
    std::istringstream in(*status);
    for (std::string line; std::getline(in, line);) {
      if (!starts_with(line, "Seccomp:")) continue;
      auto mode = parse_number<int>(line.substr(8));
      if (mode && *mode == 0) break;
      return refused(verb,
                     fmt::format("thread {} of process {} runs under seccomp ({})", tid, pid,
                                 mode && *mode == 1 ? "strict mode" : "a filter"),
                     "seccomp filters are not saved yet: the restored process would run without them. Nothing was "
                     "stopped");
    }
  }
  return ok();
}

// The restored process is created in the namespaces of `wpckpt restore`:
// one in other namespaces than wpckpt's would silently change them.
constexpr std::array<const char*, 10> kNamespaces = {"cgroup", "ipc",  "mnt",  "net",  "pid", "pid_for_children",
                                                     "time",   "time_for_children", "user", "uts"};

// wpckpt's own, read once: its main thread never changes namespace (the
// network lock enters another one on a thread of its own), and the check
// runs again while the process is frozen.
const std::array<std::optional<std::string>, kNamespaces.size()>& our_namespaces() {
  static const auto ours = [] {
    std::array<std::optional<std::string>, kNamespaces.size()> links;
    for (size_t i = 0; i < kNamespaces.size(); ++i)
      if (auto link = read_link(std::string("/proc/self/ns/") + kNamespaces[i])) links[i] = *link;
    return links;
  }();
  return ours;
}

Result<void> refuse_other_namespaces(pid_t pid, std::string_view verb) {
  std::vector<std::string> differ;
  for (size_t i = 0; i < kNamespaces.size(); ++i) {
    const char* ns = kNamespaces[i];
    const auto& ours = our_namespaces()[i];
    if (!ours) continue;  // a namespace this kernel lacks
    auto theirs = read_link(proc(pid, std::string("ns/") + ns));
    if (!theirs || *theirs == *ours) continue;
    differ.push_back(fmt::format("{} ({}, wpckpt's {})", ns, *theirs, *ours));
  }
  if (differ.empty()) return ok();
  return refused(verb, fmt::format("process {} is in other namespaces than wpckpt: {}", pid, joined(differ)),
                 "namespaces are not restored yet: run wpckpt inside the process's namespaces (e.g. nsenter -t PID "
                 "-a wpckpt ...). Nothing was stopped");
}

}  // namespace

Result<std::vector<pid_t>> children_by_proc_scan(pid_t pid) {
  WPCKPT_TRY_ASSIGN(auto pids, numeric_entries("/proc"));
  std::vector<pid_t> out;
  for (int p : pids) {
    auto h = stat_head(p);
    if (h && h->ppid == pid) out.push_back(p);
  }
  return out;
}

Result<std::vector<pid_t>> children_of(pid_t pid) {
  if (::access("/proc/thread-self/children", R_OK) != 0) return children_by_proc_scan(pid);
  WPCKPT_TRY_ASSIGN(auto tids, numeric_entries(proc(pid, "task")));
  std::vector<pid_t> out;
  for (int tid : tids) {
    auto text = read_text(proc(pid, fmt::format("task/{}/children", tid)));
    if (!text) continue;  // the thread exited meanwhile
    std::istringstream in(*text);
    for (std::string word; in >> word;) {
      WPCKPT_TRY_ASSIGN(pid_t c, parse_number<pid_t>(word, 10, proc(pid, fmt::format("task/{}/children", tid))));
      out.push_back(c);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_children_refusal(const Error& e) {
  return e.err == EOPNOTSUPP &&
         (e.context.find(kOneChild) != std::string::npos || e.context.find(kChildren) != std::string::npos);
}

Result<void> refuse_unsupported_state(pid_t pid, std::string_view verb, uint64_t ghost_limit,
                                      bool file_locks, bool tree_member, const std::vector<tracker::Vma>* areas) {
  WPCKPT_TRY(refuse_seccomp(pid, verb));
  WPCKPT_TRY(refuse_other_namespaces(pid, verb));
  if (!tree_member) WPCKPT_TRY(refuse_children(pid, verb));
  WPCKPT_TRY(refuse_deleted_paths(pid, verb));
  WPCKPT_TRY(refuse_fds(pid, verb, ghost_limit, file_locks));
  return refuse_kernel_object_mappings(pid, verb, areas);
}

}  // namespace wpckpt::dump
