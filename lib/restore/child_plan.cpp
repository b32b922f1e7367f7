#include "lib/restore/child_plan.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>

#include "lib/probe/features.hpp"

namespace wpckpt::restore {

using state::FdKind;

namespace {

Result<ObjectKey> key_of(const state::FdState& f) {
  WPCKPT_TRY_ASSIGN(uint64_t key, fds::handler_for(f.kind).object_key(f));
  return ObjectKey{f.kind, key};
}

// Pipes with only one end in the process: at 0-2 such an end is wpckpt's own.
Result<std::map<ObjectKey, int>> pipe_ends(const state::ProcessState& state) {
  std::map<ObjectKey, int> ends;  // bit 1 read, bit 2 write
  for (const auto& f : state.fds) {
    if (f.kind != FdKind::Pipe) continue;
    WPCKPT_TRY_ASSIGN(ObjectKey key, key_of(f));
    ends[key] |= (f.flags & O_ACCMODE) == O_WRONLY ? 2 : 1;
  }
  return ends;
}

// Shared ids live next to inodes in one key space: the top bit keeps them apart.
constexpr uint64_t kSharedIdBit = uint64_t{1} << 63;

}  // namespace

Result<std::optional<ObjectKey>> tree_key(const state::FdState& f) {
  bool by_inode = f.kind == FdKind::Pipe ||
                  (f.kind == FdKind::UnixSocket && f.details.is_object() && f.details.value("state", "") == "pair");
  if (by_inode) {
    WPCKPT_TRY_ASSIGN(ObjectKey key, key_of(f));
    return std::optional(key);
  }
  if (f.shared_id == 0) return std::optional<ObjectKey>();
  return std::optional(ObjectKey{f.kind, f.shared_id | kSharedIdBit});
}

Result<void> plan_fds(const state::ProcessState& state, ChildPlan& plan, const ImageFileReader& read_image_file,
                      const TreeFds* tree) {
  WPCKPT_TRY_ASSIGN(auto ends, pipe_ends(state));
  if (tree) ends = tree->pipe_ends;
  std::map<ObjectKey, size_t> object_of;
  std::map<int, size_t> tree_object_of;  // tree object index -> plan.objects index
  for (const auto& f : state.fds) {
    const fds::FdHandler& handler = fds::handler_for(f.kind);
    FdTarget target{f.fd, plan.objects.size(), 0, f.cloexec};
    WPCKPT_TRY_ASSIGN(ObjectKey key, key_of(f));
    if (tree) {
      WPCKPT_TRY_ASSIGN(auto shared_key, tree_key(f));
      auto made = shared_key ? tree->shared.find(*shared_key) : tree->shared.end();
      if (made != tree->shared.end()) {
        // Made once before the processes fork: this process inherits it.
        auto [it, fresh] = tree_object_of.emplace(made->second, plan.objects.size());
        if (fresh) {
          FdObject o;
          o.kind = f.kind;
          o.first_fd = f.fd;
          o.tree_object = made->second;
          plan.objects.push_back(std::move(o));
        }
        target.object = it->second;
        WPCKPT_TRY(handler.add(f, plan.objects[target.object], target));
        plan.targets.push_back(target);
        continue;
      }
    }
    bool lone_pipe = f.kind == FdKind::Pipe && ends[key] != 3;
    if (f.fd <= 2 && (f.kind == FdKind::Tty || lone_pipe)) {
      FdObject o;
      o.kind = f.kind;
      o.first_fd = f.fd;
      o.inherit_fd = f.fd;
      plan.objects.push_back(std::move(o));
      plan.targets.push_back(target);
      continue;
    }
    auto it = key.second != 0 ? object_of.find(key) : object_of.end();
    if (it == object_of.end()) {
      FdObject o;
      o.kind = f.kind;
      o.first_fd = f.fd;
      WPCKPT_TRY(handler.plan(f, read_image_file, o));
      if (key.second != 0) object_of[key] = plan.objects.size();
      plan.objects.push_back(std::move(o));
    } else {
      target.object = it->second;
    }
    WPCKPT_TRY(handler.add(f, plan.objects[target.object], target));
    plan.targets.push_back(target);
  }
  return ok();
}

Result<void> open_fd_files(ChildPlan& plan, std::vector<UniqueFd>& held) {
  const int floor = plan_fd_floor(plan);
  for (FdObject& o : plan.objects) {
    if (o.inherit_fd >= 0 || o.tree_object >= 0) continue;  // a tree's shared objects are prepared once, for all
    WPCKPT_TRY(fds::handler_for(o.kind).prepare(o, held, floor));
  }
  return ok();
}

void plan_limits(const state::ProcessState& state, ChildPlan& plan, std::vector<std::string>& warnings) {
  static const char* names[] = {"CPU",     "FSIZE",   "DATA",  "STACK",  "CORE",       "RSS",
                                "NPROC",   "NOFILE",  "MEMLOCK", "AS",   "LOCKS",      "SIGPENDING",
                                "MSGQUEUE", "NICE",   "RTPRIO", "RTTIME"};
  bool can_raise = probe::has_feature("cap_sys_resource");  // switchable: the warning path is testable
  for (const auto& l : state.rlimits) {
    if (l.resource < 0 || l.resource >= RLIM_NLIMITS) continue;
    rlimit now{};
    if (getrlimit(static_cast<__rlimit_resource>(l.resource), &now) != 0) continue;
    rlimit want{l.cur, l.max};
    if (want.rlim_max > now.rlim_max && !can_raise) {
      warnings.push_back(std::string("RLIMIT_") + names[l.resource] + " hard limit " + std::to_string(l.max) +
                         " cannot be raised above " + std::to_string(now.rlim_max) +
                         " without CAP_SYS_RESOURCE; the restored process keeps " + std::to_string(now.rlim_max));
      want.rlim_max = now.rlim_max;
      want.rlim_cur = std::min(want.rlim_cur, want.rlim_max);
    }
    if (want.rlim_cur == now.rlim_cur && want.rlim_max == now.rlim_max) continue;
    plan.limits.push_back({l.resource, want});
  }
}

int plan_fd_floor(const ChildPlan& plan) {
  int floor = std::max(3, plan.min_floor);
  for (const auto& t : plan.targets) floor = std::max(floor, t.fd + 1);
  for (int fd : plan.keep_fds) floor = std::max(floor, fd + 1);
  return floor;
}

// ---- the child side: system calls only ----

namespace {

using namespace fds;  // the ChildStep values

[[noreturn]] void fail(int report_fd, int32_t step, int fd) { child_fail(report_fd, step, fd); }

// Moves `fd` to a number >= `floor` (above every number the plan uses).
int move_high(int fd, int floor) {
  if (fd < 0 || fd >= floor) return fd;
  int high = fcntl(fd, F_DUPFD, floor);
  ::close(fd);
  return high;
}

// No signal may run wpckpt's handlers here, and none may interrupt the rebuild.
void block_and_reset_signals() {
  uint64_t all = ~uint64_t{0};
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, 8);
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct {
      uint64_t handler, flags, restorer, mask;
    } act{0, 0, 0, 0};  // SIG_DFL
    syscall(SYS_rt_sigaction, sig, &act, nullptr, 8);
  }
}

// Every object above `floor`: wpckpt's descriptors copied, the rest created by its handler.
void create_objects(ChildPlan& plan, int floor, int report_fd) {
  for (auto& o : plan.objects) {
    if (o.inherit_fd < 0) continue;
    o.tmp[0] = fcntl(o.inherit_fd, F_DUPFD, floor);  // 0-2 are about to be replaced
    if (o.tmp[0] < 0) fail(report_fd, kStepSaveInherited, o.first_fd);
    if (o.inherit_fd_end1 < 0) continue;
    o.tmp[1] = fcntl(o.inherit_fd_end1, F_DUPFD, floor);
    if (o.tmp[1] < 0) fail(report_fd, kStepSaveInherited, o.first_fd);
  }
  for (auto& o : plan.objects) {
    if (o.inherit_fd >= 0) continue;
    if (int32_t step = handler_for(o.kind).create(o); step != 0) fail(report_fd, step, o.first_fd);
    bool two_ends = o.tmp[1] >= 0;
    o.tmp[0] = move_high(o.tmp[0], floor);
    o.tmp[1] = move_high(o.tmp[1], floor);
    if (o.tmp[0] < 0 || (two_ends && o.tmp[1] < 0)) fail(report_fd, kStepMoveHigh, o.first_fd);
  }
}

void place_targets(const ChildPlan& plan, int report_fd) {
  for (const auto& t : plan.targets) {
    const FdObject& o = plan.objects[t.object];
    int src = o.tmp[t.end == 1 ? 1 : 0];
    if (dup3(src, t.fd, t.cloexec ? O_CLOEXEC : 0) < 0) fail(report_fd, kStepDup, t.fd);
  }
  for (const auto& o : plan.objects) {
    for (const auto& e : o.epoll_targets) {
      epoll_event ev{};
      ev.events = e.events;
      ev.data.u64 = e.data;
      if (epoll_ctl(e.epfd, EPOLL_CTL_ADD, e.fd, &ev) != 0) fail(report_fd, kStepEpollCtl, e.epfd);
    }
  }
}

// Close everything else: the temporaries and whatever wpckpt had open.
void close_the_rest(const ChildPlan& plan, int report_fd, int hold_fd) {
  std::array<int, 4096> keep{};
  size_t nkeep = 0;
  auto add_keep = [&](int fd) {
    if (nkeep < keep.size()) keep[nkeep++] = fd;
  };
  for (const auto& t : plan.targets) add_keep(t.fd);
  for (int fd : plan.keep_fds) add_keep(fd);
  add_keep(report_fd);
  add_keep(hold_fd);
  std::sort(keep.begin(), keep.begin() + static_cast<long>(nkeep));
  unsigned next = 0;
  for (size_t i = 0; i < nkeep; ++i) {
    unsigned k = static_cast<unsigned>(keep[i]);
    if (k > next) syscall(SYS_close_range, next, k - 1, 0);
    next = k + 1;
  }
  syscall(SYS_close_range, next, ~0u, 0);
}

void set_process_attributes(const ChildPlan& plan, int report_fd) {
  if (!plan.root.empty() && plan.root != "/" && chroot(plan.root.c_str()) != 0) fail(report_fd, kStepRoot, -1);
  if (!plan.cwd.empty() && chdir(plan.cwd.c_str()) != 0) fail(report_fd, kStepCwd, -1);
  ::umask(plan.umask);
  for (const auto& l : plan.limits) {
    if (prlimit(0, static_cast<__rlimit_resource>(l.resource), &l.value, nullptr) != 0)
      fail(report_fd, kStepRlimit, l.resource);
  }
  if (plan.set_personality && ::personality(plan.personality) < 0) fail(report_fd, kStepPersonality, -1);
}

}  // namespace

void child_fail(int report_fd, int32_t step, int fd) {
  ChildReport r{step, errno, fd, static_cast<int32_t>(::getpid())};
  [[maybe_unused]] ssize_t n = ::write(report_fd, &r, sizeof r);
  _exit(127);
}

int set_session(const ChildPlan& plan) {
  long r = 0;
  switch (plan.session) {
    case ChildPlan::Session::Keep: return 0;
    case ChildPlan::Session::Lead: r = ::setsid(); break;
    case ChildPlan::Session::OwnGroup: r = ::setpgid(0, 0); break;
    case ChildPlan::Session::JoinGroup: r = ::setpgid(0, plan.join_pgid); break;
  }
  return r < 0 ? errno : 0;
}

void run_child_plan(ChildPlan& plan, int report_fd, int hold_fd, pid_t parent) {
  if (parent > 0) {
    // A killed wpckpt must not leave this half-built process behind.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(report_fd, kStepDeathSignal, -1);
    if (getppid() != parent) _exit(127);  // it died before the line above
  }
  block_and_reset_signals();
  if (int err = set_session(plan); err != 0) {
    errno = err;
    fail(report_fd, kStepSession, -1);
  }
  if (plan.fork_children) plan.fork_children(plan.fork_context, report_fd, hold_fd);
  int floor = std::max(plan_fd_floor(plan), std::max(report_fd, hold_fd) + 1);
  create_objects(plan, floor, report_fd);
  place_targets(plan, report_fd);
  close_the_rest(plan, report_fd, hold_fd);
  set_process_attributes(plan, report_fd);

  ChildReport ready{};
  ready.pid = static_cast<int32_t>(::getpid());
  if (::write(report_fd, &ready, sizeof ready) != sizeof ready) _exit(127);
  char c;
  while (::read(hold_fd, &c, 1) < 0 && errno == EINTR) {
  }
  _exit(127);  // wpckpt went away before taking over: nothing half-restored stays
}

}  // namespace wpckpt::restore
