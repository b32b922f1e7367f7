// `wpckpt untrack`: undo an attach (attach.hpp).
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <optional>

#include "lib/attach/attach.hpp"
#include "lib/attach/process_fds.hpp"
#include "lib/base/uapi/agent_state.hpp"
#include "lib/ptrace/freezer.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/may_trace.hpp"
#include "tracker/agent_link.hpp"
#include "tracker/proc_maps.hpp"
#include "tracker/uffd_ops.hpp"

namespace wpckpt::attach {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kKcmpFile = 0;

std::string who(pid_t pid) { return "pid " + std::to_string(pid); }

// Unregisters every area registered with `uffd`. An area with write-protect
// registration ("uw") may belong to another uffd of the program: registering
// it again with ours is a no-op when it is ours and EBUSY when it is not
// (docs/KERNEL.md §13), so only ours are unregistered.
Result<uint64_t> unregister_ours(pid_t pid, int uffd) {
  WPCKPT_TRY_ASSIGN(std::vector<tracker::Vma> vmas, tracker::read_smaps(pid));
  uint64_t count = 0;
  for (const tracker::Vma& v : vmas) {
    if (!v.has_flag("uw")) continue;
    auto mine = tracker::register_write_protect(uffd, v.start, v.end);
    if (!mine && (mine.error().err == EBUSY || mine.error().err == ENOMEM)) continue;  // another uffd's; or gone
    WPCKPT_TRY(mine);
    WPCKPT_TRY(tracker::unregister(uffd, v.start, v.end));
    ++count;
  }
  return count;
}

bool same_file(pid_t pid, int ours, int theirs) {
  return ::syscall(SYS_kcmp, ::getpid(), pid, kKcmpFile, ours, theirs) == 0;
}

}  // namespace

Result<UntrackReport> untrack(pid_t pid) {
  WPCKPT_TRY(ptrace::check_may_trace(pid));
  WPCKPT_TRY_ASSIGN(tracker::StatePage page, tracker::AgentLink::find_state_page(pid));
  if (page.fd < 0)
    return make_error(ENOENT, "untrack", who(pid) + ": wpckpt has attached nothing to it")
        .with_hint("nothing to undo (never attached, or the process exec'd or closed the descriptors)");
  if (page.seen.magic != uapi::kAgentMagic || page.seen.origin != uapi::kOriginAttached)
    return make_error(EPERM, "untrack", who(pid) + ": the wpckpt agent tracks it, wpckpt did not attach it")
        .with_hint("it was started with `wpckpt run` (or links the agent); that tracking ends with the process");
  UntrackReport rep;
  rep.inherited = page.seen.pid != pid;
  std::optional<tracker::AgentLink> link;
  if (!rep.inherited) {
    auto l = tracker::AgentLink::attach(pid);
    if (l) {
      link.emplace(std::move(l).value());
    } else if (l.error().err != EBADF) {  // EBADF: the uffd is gone already, only the page is left
      return std::move(l).error();
    }
  }
  if (link) {
    WPCKPT_TRY(link->lock());  // no pre-dump re-registers meanwhile
    WPCKPT_TRY_ASSIGN(rep.areas_unregistered, unregister_ours(pid, link->uffd()));
  }

  const auto t0 = Clock::now();
  WPCKPT_TRY_ASSIGN(ptrace::Freezer frozen, ptrace::Freezer::freeze(pid));
  WPCKPT_TRY(ptrace::check_may_trace(pid));
  std::vector<int> to_close;
  if (fd_target(pid, page.fd) == uapi::kAgentMemfdLink) to_close.push_back(page.fd);
  const int uffd = page.seen.uffd;
  bool uffd_is_ours = link ? same_file(pid, link->uffd(), uffd)
                           : rep.inherited && fd_target(pid, uffd) == "anon_inode:[userfaultfd]";
  if (uffd_is_ours && uffd != page.fd) to_close.push_back(uffd);
  WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(frozen.tids().front()));
  for (int fd : to_close)
    WPCKPT_TRY(inj->checked_syscall("close", who(pid) + " fd " + std::to_string(fd), SYS_close,
                                    static_cast<uint64_t>(fd)));
  WPCKPT_TRY(inj->cure());
  frozen.detach();
  rep.frozen_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  rep.state_fd = page.fd;
  rep.uffd_fd = uffd_is_ours ? uffd : -1;
  return rep;
}

}  // namespace wpckpt::attach
