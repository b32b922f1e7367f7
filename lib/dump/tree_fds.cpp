#include "lib/dump/tree_fds.hpp"

#include <fmt/core.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>

#include "lib/state/fd_kind.hpp"

namespace wpckpt::dump {
namespace {

constexpr int kKcmpFile = 0;

struct Representative {
  pid_t pid;
  int fd;
  uint64_t id;
  size_t members = 1;  // how many processes hold it
};

bool same_file(pid_t a, int fa, pid_t b, int fb) { return ::syscall(SYS_kcmp, a, b, kKcmpFile, fa, fb) == 0; }

}  // namespace

Result<void> assign_shared_ids(std::vector<std::pair<pid_t, state::ProcessState*>>& members, std::string_view verb) {
  std::map<state::FdKind, std::vector<Representative>> reps;
  uint64_t next = 1;
  for (auto& [pid, st] : members) {
    std::map<uint64_t, uint64_t> of_object;  // this process's object_id -> shared id
    for (state::FdState& f : st->fds) {
      if (f.kind == state::FdKind::Pipe) continue;  // keyed by inode
      if (auto it = of_object.find(f.object_id); it != of_object.end()) {
        f.shared_id = it->second;
        continue;
      }
      auto& list = reps[f.kind];
      Representative* found = nullptr;
      for (auto& r : list) {
        if (r.pid != pid && same_file(r.pid, r.fd, pid, f.fd)) {
          found = &r;
          break;
        }
      }
      if (found) {
        ++found->members;
      } else {
        list.push_back({pid, f.fd, next++});
        found = &list.back();
      }
      f.shared_id = found->id;
      of_object[f.object_id] = found->id;
    }
  }
  // Ids held by one process only are not shared: back to 0.
  std::map<uint64_t, const Representative*> by_id;
  for (const auto& [kind, list] : reps)
    for (const auto& r : list) by_id[r.id] = &r;
  for (auto& [pid, st] : members) {
    for (state::FdState& f : st->fds) {
      if (f.shared_id == 0) continue;
      if (by_id[f.shared_id]->members < 2) {
        f.shared_id = 0;
        continue;
      }
      // An epoll instance names its targets by descriptor number in one process.
      if (f.kind == state::FdKind::Epoll)
        return make_error(EOPNOTSUPP, std::string(verb),
                          fmt::format("process {} fd {}: an epoll instance shared with another process of the tree", pid,
                                      f.fd))
            .with_hint("epoll instances shared between processes are not restored yet; the processes run on unchanged");
    }
  }
  return ok();
}

}  // namespace wpckpt::dump
