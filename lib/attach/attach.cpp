#include "lib/attach/attach.hpp"

#include <sys/syscall.h>

#include <chrono>
#include <vector>

#include "lib/attach/process_fds.hpp"
#include "lib/base/log.hpp"
#include "lib/base/uapi/agent_state.hpp"
#include "lib/ptrace/agent_injection.hpp"
#include "lib/ptrace/freezer.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/may_trace.hpp"
#include "tracker/agent_link.hpp"

namespace wpckpt::attach {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char kUffdLink[] = "anon_inode:[userfaultfd]";

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

AttachReport existing(const tracker::AgentLink& link) {
  AttachReport rep;
  rep.tracking = link.origin() == uapi::kOriginAttached ? "attached" : "agent";
  rep.uffd_fd = link.target_uffd_fd();
  rep.state_fd = link.target_state_fd();
  rep.route = link.route();
  return rep;
}

bool attached_page(const tracker::StatePage& page) {
  return page.fd >= 0 && page.seen.magic == uapi::kAgentMagic && page.seen.origin == uapi::kOriginAttached;
}

// What is left of tracking wpckpt attached may be replaced: a fork parent's
// page and uffd (ESRCH), a page whose uffd was closed (EBADF). An agent's
// tracking never is: the agent keeps its own numbers.
bool replaceable(const tracker::StatePage& page, const Error& why) {
  return attached_page(page) && (why.err == ESRCH || why.err == EBADF);
}

// The descriptors the new attach replaces: the old page, and the uffd too
// when both are a fork parent's.
std::vector<int> leftovers(pid_t pid, const tracker::StatePage& page) {
  std::vector<int> out;
  if (page.fd < 0) return out;
  out.push_back(page.fd);
  if (page.seen.pid != pid && page.seen.uffd >= 0 && page.seen.uffd != page.fd &&
      fd_target(pid, page.seen.uffd) == kUffdLink)
    out.push_back(page.seen.uffd);
  return out;
}

std::string reason_for(pid_t pid, const tracker::StatePage& page) {
  if (page.fd < 0)
    return "the process had no tracking (started without `wpckpt run`, or it exec'd or closed what wpckpt "
           "had attached)";
  if (page.seen.pid != pid)
    return "a fork child of pid " + std::to_string(page.seen.pid) +
           ": the descriptors it inherited track its parent's memory";
  return "the process closed the userfaultfd wpckpt had attached (fd " + std::to_string(page.seen.uffd) + ")";
}

// Frozen: look again (another wpckpt may have attached meanwhile), then inject.
Result<AttachReport> attach_frozen(pid_t pid) {
  const auto t0 = Clock::now();
  WPCKPT_TRY_ASSIGN(ptrace::Freezer frozen, ptrace::Freezer::freeze(pid));
  WPCKPT_TRY(ptrace::check_may_trace(pid));  // the pid may have been reused
  WPCKPT_TRY_ASSIGN(tracker::StatePage page, tracker::AgentLink::find_state_page(pid));
  if (page.fd >= 0) {
    auto link = tracker::AgentLink::attach(pid);
    if (link) return existing(*link);
    if (!replaceable(page, link.error())) return std::move(link).error();
  }
  AttachReport rep;
  rep.tracking = "new";
  rep.reason = reason_for(pid, page);
  const std::vector<int> old = leftovers(pid, page);
  ptrace::AgentFdsRequest request;
  request.pid = pid;
  request.origin = uapi::kOriginAttached;
  WPCKPT_TRY_ASSIGN(request.lowest, high_free_base(pid));
  WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(frozen.tids().front()));
  WPCKPT_TRY_ASSIGN(ptrace::InjectedAgentFds made, ptrace::inject_agent_fds(*inj, request));
  for (int fd : old)
    WPCKPT_TRY(inj->checked_syscall("close (what an earlier attach left)", "fd " + std::to_string(fd), SYS_close,
                                    static_cast<uint64_t>(fd)));
  WPCKPT_TRY(inj->cure());
  frozen.detach();
  rep.frozen_ms = ms_since(t0);
  rep.uffd_fd = made.uffd_fd;
  rep.state_fd = made.state_fd;
  rep.route = made.route;
  log::info("pid {}: attached (uffd fd {}, state fd {}, route {}), frozen {:.2f} ms: {}", pid, rep.uffd_fd,
            rep.state_fd, rep.route, rep.frozen_ms, rep.reason);
  return rep;
}

}  // namespace

Result<AttachReport> ensure_tracked(pid_t pid) {
  WPCKPT_TRY(ptrace::check_may_trace(pid));
  WPCKPT_TRY_ASSIGN(tracker::StatePage page, tracker::AgentLink::find_state_page(pid));
  if (page.fd >= 0) {
    auto link = tracker::AgentLink::attach(pid);
    if (link) return existing(*link);
    if (!replaceable(page, link.error())) return std::move(link).error();
  }
  return attach_frozen(pid);
}

}  // namespace wpckpt::attach
