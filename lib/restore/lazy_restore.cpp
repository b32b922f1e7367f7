#include "lib/restore/lazy_restore.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>

#include "lib/base/log.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/base/uapi/userfaultfd.hpp"
#include "lib/ptrace/stop.hpp"
#include "lib/restore/address_space.hpp"
#include "lib/restore/lazy_page_source.hpp"
#include "tracker/memory_kind.hpp"

namespace wpckpt::restore {

namespace {

constexpr const char kInRestored[] = "in the restored process";
constexpr uint32_t kReportMagic = 0x4c5a5950;  // "PYZL"

// What the pager sends back once, at its end (one write, under PIPE_BUF).
struct PagerReport {
  uint32_t magic = kReportMagic;
  uint32_t ok = 0;
  PagerStats stats;
  char error[1024] = {};
};
static_assert(sizeof(PagerReport) < PIPE_BUF);


// Restore creates it as private anonymous memory (address_space.cpp map_one),
// the only kind MISSING mode can fill page by page.
bool is_lazy(const state::Mapping& m) {
  return !m.shared && !(m.file && tracker::maps_file_again(m.kind)) && !tracker::is_kernel_provided(m.kind);
}

// The lazy mappings' parts that the image covers with contents.
std::vector<LazyRegion> lazy_regions(const std::vector<state::Mapping>& mappings, const image::Manifest& manifest) {
  std::vector<LazyRegion> out;
  for (const auto& m : mappings) {
    if (!is_lazy(m)) continue;
    for (const auto& a : manifest.areas) {
      if (!a.contents) continue;
      uint64_t lo = std::max(m.start, a.start), hi = std::min(m.end, a.end);
      if (lo >= hi) continue;
      LazyRegion r;
      r.start = r.image_start = lo;
      r.end = hi;
      r.wipe_on_fork = m.has_vm_flag("wf");
      r.state.assign((hi - lo) / image::kPageSize, PageState::Pending);
      out.push_back(std::move(r));
    }
  }
  return out;
}

// The pages every thread touches first: the top of its stack (a signal
// frame goes below it), its TLS and rseq area.
std::vector<uint64_t> hot_pages(const state::ProcessState& st) {
  std::vector<uint64_t> out;
  for (const auto& t : st.threads) {
    for (uint64_t a : {t.regs.rsp, t.regs.rsp - 16384, t.regs.fs_base, t.rseq.abi_pointer})
      if (a != 0) out.push_back(a - a % image::kPageSize);
  }
  return out;
}

// userfaultfd() inside the restored process, at a high descriptor number
// (out of the way of the numbers the program opens next), without
// UFFD_USER_MODE_ONLY: the kernel's own accesses (read(2) into a missing
// page) must wait for the pager too, not fail with EFAULT.
Result<int> create_uffd_in_process(ptrace::Injector& inj, const state::ProcessState& st) {
  WPCKPT_TRY_ASSIGN(long fd, inj.syscall(uapi::kNrUserfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    return make_error(static_cast<int>(-fd), "userfaultfd", kInRestored)
        .with_hint("lazy restore needs a userfaultfd that handles kernel faults: CAP_SYS_PTRACE, or "
                   "vm.unprivileged_userfaultfd=1; restore without --lazy");
  }
  struct rlimit lim{};
  if (::prlimit(st.pid, RLIMIT_NOFILE, nullptr, &lim) != 0) return errno_error("prlimit", kInRestored);
  const auto& t = st.tracking;
  auto agent_number = [&](const char* key) {
    return t.is_object() && t.contains(key) && t[key].is_number_integer() ? t[key].get<long>() : -1L;
  };
  // Just below the limit, but never past 1024: a huge limit would make the
  // kernel allocate a descriptor table that large. Never at a number the
  // agent's descriptors get later (recreate_agent_link dup3s over them).
  const uint64_t limit = std::min<uint64_t>(lim.rlim_cur, 1024);
  uint64_t floor = limit > 128 ? limit - 64 : 3;
  for (int tries = 0; tries < 4; ++tries) {
    WPCKPT_TRY_ASSIGN(long high, inj.checked_syscall("fcntl(F_DUPFD_CLOEXEC)", kInRestored, SYS_fcntl,
                                                     static_cast<uint64_t>(fd), F_DUPFD_CLOEXEC, floor));
    if (high == agent_number("uffd_fd") || high == agent_number("agent_state_fd")) {
      WPCKPT_TRY(inj.checked_syscall("close", kInRestored, SYS_close, static_cast<uint64_t>(high)));
      floor = static_cast<uint64_t>(high) + 1;
      continue;
    }
    WPCKPT_TRY(inj.checked_syscall("close", kInRestored, SYS_close, static_cast<uint64_t>(fd)));
    return static_cast<int>(high);
  }
  return make_error(EBUSY, "place the userfaultfd", kInRestored).with_hint("this is a wpckpt bug");
}

// Our copy of the process's uffd, with the four events (docs/KERNEL.md §9:
// without them a fork child, an mremap or a MADV_DONTNEED would read zeros
// or stale data), every lazy region registered MISSING.
Result<UniqueFd> take_and_register(pid_t pid, int number, const std::vector<LazyRegion>& regions) {
  UniqueFd pidfd(static_cast<int>(::syscall(uapi::kNrPidfdOpen, pid, 0)));
  if (!pidfd) return errno_error("pidfd_open", "restored process " + std::to_string(pid));
  UniqueFd uffd(static_cast<int>(::syscall(uapi::kNrPidfdGetfd, pidfd.get(), number, 0)));
  if (!uffd) return errno_error("pidfd_getfd", "the userfaultfd of the restored process");
  uapi::UffdioApi api{uapi::kUffdApi,
                      uapi::kFeatEventFork | uapi::kFeatEventRemap | uapi::kFeatEventRemove | uapi::kFeatEventUnmap, 0};
  if (::ioctl(uffd.get(), uapi::kUffdioApi, &api) != 0)
    return errno_error("UFFDIO_API", "events fork, remap, remove, unmap").with_hint("EVENT_FORK needs CAP_SYS_PTRACE");
  for (const auto& r : regions) {
    uapi::UffdioRegister reg{{r.start, r.end - r.start}, uapi::kRegisterModeMissing, 0};
    if (::ioctl(uffd.get(), uapi::kUffdioRegister, &reg) != 0) {
      char buf[64];
      snprintf(buf, sizeof buf, "0x%llx-0x%llx", static_cast<unsigned long long>(r.start),
               static_cast<unsigned long long>(r.end));
      return errno_error("UFFDIO_REGISTER (missing)", buf);
    }
  }
  return uffd;
}

// The pager process: dies with wpckpt restore, ignores the terminal's
// signals (restore forwards those to the restored process), reports once.
[[noreturn]] void pager_main(const image::ImageChain& chain, PagerOptions options, int report_fd, pid_t parent,
                             const std::function<void()>& complete) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  prctl(PR_SET_NAME, "wpckpt-pager");
  for (int sig : {SIGINT, SIGQUIT, SIGHUP, SIGTSTP, SIGPIPE}) signal(sig, SIG_IGN);
  for (int sig : {SIGTERM, SIGCHLD}) signal(sig, SIG_DFL);
  ChainPageSource source(chain);
  PagerReport report;
  auto r = run_pager(source, std::move(options));
  if (r) {
    if (complete) complete();  // all in, or the process ended: the source is no longer needed
    report.ok = 1;
    report.stats = *r;
  } else {
    std::string msg = r.error().message();
    if (!r.error().hint.empty()) msg += " (" + r.error().hint + ")";
    snprintf(report.error, sizeof report.error, "%s", msg.c_str());
  }
  if (::write(report_fd, &report, sizeof report) != static_cast<ssize_t>(sizeof report)) _exit(126);
  _exit(r ? 0 : 1);
}

// Every descendant of `pid` (children of each of its threads, recursively).
std::vector<pid_t> descendants(pid_t pid) {
  std::vector<pid_t> out, todo{pid};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(p) + "/task", ec)) {
      std::ifstream in(task.path() / "children");
      for (pid_t c; in >> c;) {
        out.push_back(c);
        todo.push_back(c);
      }
    }
  }
  return out;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "ended with wait status " + std::to_string(status);
}

}  // namespace

Result<std::unique_ptr<LazyRestore>> LazyRestore::start(ptrace::Injector& inj, const image::ImageChain& chain,
                                                         const state::ProcessState& st, FillStats& fill,
                                                         const std::function<void()>& complete) {
  const auto t0 = std::chrono::steady_clock::now();
  auto ms = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
  std::unique_ptr<LazyRestore> lazy(new LazyRestore());
  const std::vector<state::Mapping> mappings = regular_mappings(st);
  std::vector<state::Mapping> eager;
  for (const auto& m : mappings)
    if (!is_lazy(m)) eager.push_back(m);
  WPCKPT_TRY_ASSIGN(fill, fill_mappings(chain, inj.mem_fd(), eager));
  log::debug("lazy restore: eager part filled ({} pages) at {:.1f} ms", fill.pages_stored, ms());
  std::vector<LazyRegion> regions = lazy_regions(mappings, chain.manifest());
  for (const auto& r : regions) lazy->pages_lazy_ += r.state.size();
  WPCKPT_TRY_ASSIGN(lazy->uffd_in_process_, create_uffd_in_process(inj, st));
  WPCKPT_TRY_ASSIGN(UniqueFd uffd, take_and_register(st.pid, lazy->uffd_in_process_, regions));
  log::debug("lazy restore: {} regions registered at {:.1f} ms", regions.size(), ms());
  WPCKPT_TRY(lazy->fork_pager(chain, uffd.get(), std::move(regions), hot_pages(st), complete));
  lazy->start_watchdog(st.pid);
  log::debug("lazy restore: pager started at {:.1f} ms", ms());
  return lazy;
}

void LazyRestore::start_watchdog(pid_t pid) {
  UniqueFd pager_fd(static_cast<int>(::syscall(uapi::kNrPidfdOpen, pager_, 0)));
  watchdog_stop_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!pager_fd || !watchdog_stop_) return;  // then wait() alone notices a dead pager
  watchdog_ = std::thread([this, pid, fd = std::move(pager_fd)] {
    pollfd fds[2] = {{fd.get(), POLLIN, 0}, {watchdog_stop_.get(), POLLIN, 0}};
    while (::poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    if (fds[0].revents && !fds[1].revents) {
      pager_died_early_ = true;
      ::kill(pid, SIGKILL);
    }
  });
}

void LazyRestore::stop_watchdog() {
  if (!watchdog_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(watchdog_stop_.get(), &one, sizeof one);
  watchdog_.join();
}

Result<void> LazyRestore::fork_pager(const image::ImageChain& chain, int uffd, std::vector<LazyRegion> regions,
                                     std::vector<uint64_t> hot, const std::function<void()>& complete) {
  int report[2], start[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return errno_error("pipe", "lazy restore pager");
  report_.reset(report[0]);
  UniqueFd report_w(report[1]);
  if (::pipe2(start, O_CLOEXEC) != 0) return errno_error("pipe", "lazy restore pager");
  UniqueFd start_r(start[0]);
  start_.reset(start[1]);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return errno_error("socketpair", "lazy restore pager");
  forks_.reset(pair[0]);
  UniqueFd forks_w(pair[1]);
  const pid_t parent = getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork", "lazy restore pager");
  if (pid == 0) {
    report_.reset();
    start_.reset();
    forks_.reset();
    PagerOptions options;
    options.fork_sink = forks_w.get();
    options.hot = std::move(hot);
    options.uffd = uffd;
    options.regions = std::move(regions);
    options.start_fd = start_r.get();
    pager_main(chain, std::move(options), report_w.get(), parent, complete);
  }
  pager_ = pid;
  log::debug("lazy restore: pager {} serves {} pages", pid, pages_lazy_);
  return ok();
}

LazyRestore::~LazyRestore() {
  stop_watchdog();
  if (pager_died_early_) log::error("lazy restore: the pager died during the restore; the process was killed");
  if (pager_ <= 0) return;
  ::kill(pager_, SIGKILL);
  while (::waitpid(pager_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

Result<void> LazyRestore::arm_death_signal(ptrace::Injector& inj) const {
  WPCKPT_TRY(inj.checked_syscall("prctl(PR_SET_PDEATHSIG)", kInRestored, SYS_prctl, PR_SET_PDEATHSIG, SIGKILL));
  return ok();
}

void LazyRestore::let_run() {
  stop_watchdog();
  start_.reset();
}

// The pager's exit, reaped: how it ended.
std::string LazyRestore::pager_end() {
  int status = 0;
  while (::waitpid(pager_, &status, 0) < 0) {
    if (errno != EINTR) return "could not be waited for";
  }
  pager_ = -1;
  return describe_status(status);
}

Result<LazyOutcome> LazyRestore::wait(pid_t pid) {
  stop_watchdog();
  LazyOutcome out;
  out.pages_lazy = pages_lazy_;
  // The pager ends by itself when the process is gone too (its copies fail
  // with ESRCH), after serving any child the process forked meanwhile.
  pollfd fds[2] = {{report_.get(), POLLIN, 0}, {forks_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return errno_error("poll", "lazy restore");
    }
    if (fds[1].revents) take_child_uffds();
    if (fds[0].revents) break;
    if (fds[1].revents & (POLLHUP | POLLERR)) fds[1].fd = -1;
  }
  PagerReport report;
  ssize_t n;
  while ((n = ::read(report_.get(), &report, sizeof report)) < 0 && errno == EINTR) {
  }
  const bool got = n == static_cast<ssize_t>(sizeof report) && report.magic == kReportMagic;
  const std::string how = pager_end();
  take_child_uffds();
  if (got && report.ok) {
    out.pager = report.stats;
    out.process_ended = report.stats.process_gone;
    out.complete = !out.process_ended;
    child_uffds_.clear();  // unregistered by the pager: nothing waits on them
    if (!out.complete) return out;
    auto released = release_process(pid);
    if (released) {
      out.reaped_status = *released;
      return out;
    }
    // It would keep a uffd that no pager reads (and its death signal): a
    // later event on it would stop the thread that raised it for good.
    for (pid_t d : descendants(pid)) ::kill(d, SIGKILL);
    ::kill(pid, SIGKILL);
    return make_error(0, "lazy restore:",
                      "all memory was in, but releasing the restored process " + std::to_string(pid) + " failed (" +
                          released.error().message() + "); it was killed")
        .with_hint("restore again, or without --lazy");
  }
  // Never a silent zero page: the process must not run on without its memory
  // (nor its children forked meanwhile, whose uffds we hold so they wait).
  for (pid_t d : descendants(pid)) ::kill(d, SIGKILL);
  ::kill(pid, SIGKILL);
  std::string why = got ? std::string(report.error) : "the pager " + how;
  // errno 0: the reason is the pager's, not a failed call of ours.
  return make_error(0, "lazy restore:", why + " before all memory was in; the restored process " + std::to_string(pid) +
                                            " was killed so that it never runs on missing memory")
      .with_hint("`wpckpt verify -D DIR` checks the image; restore again (without --lazy to fill memory first)");
}

// Receives the fork children's uffds the pager sent (none wait long: the
// pager sends each before it serves that child).
void LazyRestore::take_child_uffds() {
  for (;;) {
    char byte;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (::recvmsg(forks_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0) return;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      child_uffds_.emplace_back(fd);
    }
  }
}

// Brings the seized main thread into an event stop, passing on any signal
// that comes first. As its tracer and parent we reap it if it exits
// meanwhile: then its wait status is returned.
Result<std::optional<int>> stop_main_thread(pid_t pid) {
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceInterrupt), pid, nullptr, nullptr) != 0 && errno != ESRCH)
    return errno_error("PTRACE_INTERRUPT", "restored process " + std::to_string(pid));
  for (;;) {
    WPCKPT_TRY_ASSIGN(ptrace::Stop stop, ptrace::wait_stop(pid));
    if (stop.kind == ptrace::StopKind::Exited) return std::optional<int>(stop.status);
    if (stop.kind == ptrace::StopKind::EventStop) return std::optional<int>();
    const long sig = stop.kind == ptrace::StopKind::SignalStop ? stop.signal : 0;
    ::ptrace(PTRACE_CONT, pid, nullptr, reinterpret_cast<void*>(sig));
    ::ptrace(static_cast<__ptrace_request>(uapi::kPtraceInterrupt), pid, nullptr, nullptr);
  }
}

// All memory is in and the ranges are unregistered: the process drops its
// copy of the uffd and the death signal it held for the lazy phase. Only its
// main thread is stopped, for two injected calls (seized without
// TRACECLONE: the other threads' clones stay untraced meanwhile).
Result<std::optional<int>> LazyRestore::release_process(pid_t pid) const {
  if (::ptrace(PTRACE_SEIZE, pid, nullptr, reinterpret_cast<void*>(PTRACE_O_TRACESYSGOOD)) != 0) {
    Error e = errno_error("ptrace(SEIZE)", "restored process " + std::to_string(pid));
    siginfo_t info{};
    // It exited just now (a zombie cannot be seized: EPERM): nothing to release.
    if (e.err == ESRCH || (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                           info.si_pid == pid))
      return std::optional<int>();
    return e;
  }
  WPCKPT_TRY_ASSIGN(std::optional<int> exited, stop_main_thread(pid));
  if (exited) return exited;
  Result<void> result = [&]() -> Result<void> {
    WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(pid));
    WPCKPT_TRY(inj->checked_syscall("close", "its lazy-restore userfaultfd", SYS_close,
                                    static_cast<uint64_t>(uffd_in_process_)));
    WPCKPT_TRY(inj->checked_syscall("prctl(PR_SET_PDEATHSIG)", kInRestored, SYS_prctl, PR_SET_PDEATHSIG, 0));
    return inj->cure();
  }();
  ::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
  if (!result) return std::move(result).error();
  return std::optional<int>();
}

}  // namespace wpckpt::restore
