#include "lib/restore/child_plan.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "lib/probe/capabilities.hpp"
#include "lib/restore/file_open.hpp"
#include "lib/probe/features.hpp"
#include "lib/restore/validate.hpp"
#include "lib/state/json_fields.hpp"
#include "lib/base/uapi/process.hpp"

namespace wpckpt::restore {

namespace {

int pipe_end_of(const state::FdState& f) { return (f.flags & O_ACCMODE) == O_WRONLY ? 1 : 0; }

// A kind-specific field of a descriptor, type-checked; absent keeps `out`.
template <typename T>
Result<void> detail(const state::FdState& f, const char* key, T& out) {
  std::string where = "fd " + std::to_string(f.fd) + " details";
  if (!f.details.is_object()) return state::field_error(where, "must be an object");
  auto it = f.details.find(key);
  if (it == f.details.end()) return ok();
  return state::read_json(*it, out, where + "." + key);
}

// F_SEAL_SEAL, SHRINK, GROW, WRITE, FUTURE_WRITE, EXEC (fcntl(2)).
constexpr int kKnownSeals = 0x3f;
constexpr int kOpenFlagsDropped = O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC | O_NOCTTY;

}  // namespace

Result<void> plan_fds(const state::ProcessState& state, ChildPlan& plan, const ImageFileReader& read_image_file) {
  // Which pipes have both ends in the process (else a lone end at 0-2 is
  // inherited from wpckpt: the restored program talks to wpckpt's terminal or pipe).
  // A pipe is one object for both its ends (the dump records its inode);
  // other kinds are one object per open file description (object_id).
  std::map<int, uint64_t> pipe_of;  // fd -> the pipe's inode
  for (const auto& f : state.fds) {
    if (f.kind != "pipe") continue;
    uint64_t ino = f.object_id;
    WPCKPT_TRY(detail(f, "pipe_ino", ino));
    pipe_of[f.fd] = ino;
  }
  auto object_key = [&](const state::FdState& f) {
    if (f.kind == "pipe") return std::make_pair(pipe_of[f.fd], f.kind);
    return std::make_pair(f.object_id, f.kind);
  };
  std::map<uint64_t, int> pipe_ends;  // pipe -> bit 1 read, bit 2 write
  for (const auto& f : state.fds)
    if (f.kind == "pipe") pipe_ends[object_key(f).first] |= 1 << pipe_end_of(f);

  std::map<std::pair<uint64_t, std::string>, size_t> object_of;  // (object_id, kind) -> object index
  for (const auto& f : state.fds) {
    FdTarget target{f.fd, 0, 0, f.cloexec};
    bool lone_pipe = f.kind == "pipe" && pipe_ends[object_key(f).first] != 3;
    if (f.fd <= 2 && (f.kind == "tty" || lone_pipe)) {
      FdObject o;
      o.how = FdObject::How::Inherit;
      o.inherit_fd = f.fd;
      target.object = plan.objects.size();
      plan.objects.push_back(std::move(o));
      plan.targets.push_back(target);
      continue;
    }
    auto key = object_key(f);
    if (key.first != 0) {
      auto it = object_of.find(key);
      if (it != object_of.end()) {
        target.object = it->second;
        target.end = f.kind == "pipe" ? pipe_end_of(f) : 0;
        if (f.kind == "pipe") {
          std::vector<uint8_t> data;
          WPCKPT_TRY(detail(f, "data", data));
          if (!data.empty()) plan.objects[it->second].data = std::move(data);
        }
        plan.targets.push_back(target);
        continue;
      }
    }
    FdObject o;
    o.flags = f.flags & ~kOpenFlagsDropped;
    const std::string path = f.file ? f.file->path : std::string();
    if (f.kind == "file" || f.kind == "dir" || f.kind == "devnull" || f.kind == "tty" || f.kind == "chardev" ||
        f.kind == "fifo") {
      if (f.file && f.file->deleted) {
        return make_error(ENOENT, "reopen fd " + std::to_string(f.fd), path + " (deleted before the dump)")
            .with_hint("a descriptor of a deleted file cannot be restored yet");
      }
      o.how = FdObject::How::Open;
      if (f.file) o.file = *f.file;
      if (f.kind == "devnull" && path.empty()) o.file.path = "/dev/null";
      if (o.file.path.empty() || o.file.path[0] != '/')
        return make_error(EINVAL, "reopen fd " + std::to_string(f.fd), "no absolute path recorded");
      o.first_fd = f.fd;
      o.regular_or_block = f.kind == "file";
      o.file_type = f.kind == "dir" ? S_IFDIR : f.kind == "fifo" ? S_IFIFO : f.kind == "file" ? 0 : S_IFCHR;
      if (f.kind == "devnull") {
        o.check_rdev = true, o.rdev_major = 1, o.rdev_minor = 3;
      } else if (o.file_type == S_IFCHR) {
        std::pair<uint32_t, uint32_t> rdev{};
        WPCKPT_TRY(detail(f, "rdev", rdev));
        o.check_rdev = true, o.rdev_major = rdev.first, o.rdev_minor = rdev.second;
      }
      o.seek = f.kind == "file";
      o.pos = f.pos;
    } else if (f.kind == "pipe") {
      o.how = FdObject::How::Pipe;
      o.flags = f.flags & O_NONBLOCK;
      WPCKPT_TRY(detail(f, "data", o.data));
      target.end = pipe_end_of(f);
    } else if (f.kind == "eventfd") {
      o.how = FdObject::How::Eventfd;
      bool semaphore = false;
      WPCKPT_TRY(detail(f, "count", o.count));
      WPCKPT_TRY(detail(f, "semaphore", semaphore));
      o.flags = (f.flags & O_NONBLOCK) | (semaphore ? EFD_SEMAPHORE : 0);
    } else if (f.kind == "memfd") {
      o.how = FdObject::How::Memfd;
      o.path = "restored";
      std::string contents;
      WPCKPT_TRY(detail(f, "name", o.path));
      WPCKPT_TRY(detail(f, "contents_file", contents));
      WPCKPT_TRY(detail(f, "seals", o.seals));
      if (o.seals & ~kKnownSeals)
        return state::field_error("fd " + std::to_string(f.fd) + " details.seals", "has unknown seal bits");
      if (!contents.empty()) {
        WPCKPT_TRY_ASSIGN(auto bytes, read_image_file(contents));
        o.data.resize(bytes.size());
        std::memcpy(o.data.data(), bytes.data(), bytes.size());
      }
      o.seek = true;
      o.pos = f.pos;
    } else if (f.kind == "signalfd") {
      o.how = FdObject::How::Signalfd;
      WPCKPT_TRY(detail(f, "sigmask", o.count));
      o.flags = f.flags & O_NONBLOCK;
    } else if (f.kind == "timerfd") {
      o.how = FdObject::How::Timerfd;
      o.clockid = CLOCK_MONOTONIC;
      WPCKPT_TRY(detail(f, "clockid", o.clockid));
      o.flags = f.flags & O_NONBLOCK;
      // fdinfo's it_value is the time left: re-armed relative to now.
      std::pair<uint64_t, uint64_t> interval{}, value{};
      uint64_t ticks = 0;
      WPCKPT_TRY(detail(f, "it_interval", interval));
      WPCKPT_TRY(detail(f, "it_value", value));
      WPCKPT_TRY(detail(f, "ticks", ticks));
      if (interval.second >= 1'000'000'000 || value.second >= 1'000'000'000)
        return state::field_error("fd " + std::to_string(f.fd) + " details", "has a timer with nanoseconds >= 1e9");
      o.timer[0] = interval.first, o.timer[1] = interval.second;
      o.timer[2] = value.first, o.timer[3] = value.second;
      // Expirations not read yet (fdinfo then shows it_value 0 for a periodic
      // timer): fire at once, so the next read sees at least one.
      bool armed = o.timer[2] != 0 || o.timer[3] != 0;
      if (ticks > 0 || (!armed && (o.timer[0] != 0 || o.timer[1] != 0))) {
        o.timer[2] = 0;
        o.timer[3] = 1;
      }
    } else if (f.kind == "epoll") {
      o.how = FdObject::How::Epoll;
      std::vector<nlohmann::json> targets;
      WPCKPT_TRY(detail(f, "targets", targets));
      for (size_t i = 0; i < targets.size(); ++i) {
        EpollTarget t{f.fd, -1, 0, 0};
        state::JsonReader r(targets[i], "fd " + std::to_string(f.fd) + " details.targets[" + std::to_string(i) + "]");
        r.req("fd", t.fd);
        r.opt("events", t.events);
        r.opt("data", t.data);
        WPCKPT_TRY(r.result());
        plan.epoll_targets.push_back(t);
      }
    } else {
      return make_error(ENOTSUP, "restore fd " + std::to_string(f.fd), "of kind '" + f.kind + "'")
          .with_hint("this kind of descriptor cannot be restored yet; close it before the dump");
    }
    target.object = plan.objects.size();
    if (key.first != 0) object_of[key] = plan.objects.size();
    plan.objects.push_back(std::move(o));
    plan.targets.push_back(target);
  }
  return ok();
}

Result<void> open_fd_files(ChildPlan& plan, std::vector<UniqueFd>& held) {
  const int floor = plan_fd_floor(plan);
  for (FdObject& o : plan.objects) {
    if (o.how != FdObject::How::Open) continue;
    RecordedFile want;
    want.identity = &o.file;
    want.type = o.file_type;
    want.regular_or_block = o.regular_or_block;
    want.what = "fd " + std::to_string(o.first_fd);
    want.check_rdev = o.check_rdev;
    want.rdev = makedev(o.rdev_major, o.rdev_minor);
    WPCKPT_TRY_ASSIGN(UniqueFd fd, open_recorded(want, o.flags));
    if (o.seek && ::lseek(fd.get(), static_cast<off_t>(o.pos), SEEK_SET) < 0 && errno != ESPIPE)
      return errno_error(want.what + ": seek to offset " + std::to_string(o.pos) + " of", o.file.path);
    // Above every number the plan gives: the child's dup3 cannot overwrite it.
    UniqueFd high(::fcntl(fd.get(), F_DUPFD_CLOEXEC, floor));
    if (!high) return errno_error("fcntl(F_DUPFD)", want.what);
    o.how = FdObject::How::Inherit;
    o.inherit_fd = high.get();
    held.push_back(std::move(high));
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

// ---- the child side: system calls only ----

namespace {

enum Step : int32_t {
  kReady = 0,
  kStepSignals,
  kStepSaveInherited,
  kStepOpen,
  kStepSeek,
  kStepPipe,
  kStepPipeData,
  kStepEventfd,
  kStepMemfd,
  kStepSignalfd,
  kStepTimerfd,
  kStepEpoll,
  kStepMoveHigh,
  kStepDup,
  kStepEpollCtl,
  kStepCloseRest,
  kStepRoot,
  kStepCwd,
  kStepRlimit,
  kStepPersonality,
  kStepSeals,
  kStepDeathSignal,
};

[[noreturn]] void fail(int report_fd, int32_t step, int fd) {
  ChildReport r{step, errno, fd};
  [[maybe_unused]] ssize_t n = ::write(report_fd, &r, sizeof r);
  _exit(127);
}

// Moves `fd` to a number >= `floor` (above every number the plan uses).
int move_high(int fd, int floor) {
  if (fd < 0 || fd >= floor) return fd;
  int high = fcntl(fd, F_DUPFD, floor);
  ::close(fd);
  return high;
}

int open_object(FdObject& o) {
  using How = FdObject::How;
  switch (o.how) {
    case How::Eventfd:
      return eventfd(static_cast<unsigned>(o.count), o.flags);
    case How::Memfd: {
      int fd = static_cast<int>(syscall(SYS_memfd_create, o.path.c_str(), MFD_ALLOW_SEALING));
      if (fd < 0) return -1;
      size_t done = 0;
      while (done < o.data.size()) {
        ssize_t n = ::write(fd, o.data.data() + done, o.data.size() - done);
        if (n <= 0) {
          ::close(fd);
          return -1;
        }
        done += static_cast<size_t>(n);
      }
      if (lseek(fd, static_cast<off_t>(o.pos), SEEK_SET) < 0) {
        ::close(fd);
        return -2;
      }
      // The seals last: F_SEAL_WRITE would refuse the contents.
      if (o.seals != 0 && fcntl(fd, F_ADD_SEALS, o.seals) != 0) {
        ::close(fd);
        return -3;
      }
      return fd;
    }
    case How::Signalfd: {
      uint64_t mask = o.count;
      return static_cast<int>(syscall(SYS_signalfd4, -1, &mask, 8, o.flags));
    }
    case How::Timerfd: {
      int fd = timerfd_create(o.clockid, o.flags);
      if (fd < 0) return -1;
      itimerspec ts{};
      ts.it_interval = {static_cast<time_t>(o.timer[0]), static_cast<long>(o.timer[1])};
      ts.it_value = {static_cast<time_t>(o.timer[2]), static_cast<long>(o.timer[3])};
      if (timerfd_settime(fd, 0, &ts, nullptr) != 0) return -1;
      return fd;
    }
    case How::Epoll:
      return epoll_create1(0);
    case How::Open:     // opened by wpckpt: an Inherit by now
    case How::Inherit:
    case How::Pipe:
      break;
  }
  return -1;
}

}  // namespace

int plan_fd_floor(const ChildPlan& plan) {
  int floor = 3;
  for (const auto& t : plan.targets) floor = std::max(floor, t.fd + 1);
  for (int fd : plan.keep_fds) floor = std::max(floor, fd + 1);
  return floor;
}

std::string describe_child_step(int32_t step) {
  switch (step) {
    case kReady: return "ready";
    case kStepSignals: return "reset signal handlers";
    case kStepSaveInherited: return "keep an inherited descriptor";
    case kStepOpen: return "reopen descriptor";
    case kStepSeek: return "seek descriptor to its offset";
    case kStepPipe: return "re-create pipe";
    case kStepPipeData: return "write unread data back into pipe";
    case kStepEventfd: return "re-create eventfd";
    case kStepMemfd: return "re-create memfd";
    case kStepSignalfd: return "re-create signalfd";
    case kStepTimerfd: return "re-create timerfd";
    case kStepEpoll: return "re-create epoll";
    case kStepMoveHigh: return "move descriptor out of the way";
    case kStepDup: return "place descriptor at its number";
    case kStepEpollCtl: return "re-add descriptor to epoll";
    case kStepCloseRest: return "close other descriptors";
    case kStepRoot: return "chroot";
    case kStepCwd: return "chdir";
    case kStepRlimit: return "setrlimit";
    case kStepPersonality: return "personality";
    case kStepSeals: return "re-apply memfd seals";
    case kStepDeathSignal: return "set the parent-death signal";
    default: return "step " + std::to_string(step);
  }
}

void run_child_plan(ChildPlan& plan, int report_fd, int hold_fd, pid_t parent) {
  using How = FdObject::How;
  if (parent > 0) {
    // A killed wpckpt must not leave this half-built process behind.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(report_fd, kStepDeathSignal, -1);
    if (getppid() != parent) _exit(127);  // it died before the line above
  }
  // No signal may run wpckpt's handlers here, and none may interrupt the rebuild.
  uint64_t all = ~uint64_t{0};
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, 8);
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct {
      uint64_t handler, flags, restorer, mask;
    } act{0, 0, 0, 0};  // SIG_DFL
    syscall(SYS_rt_sigaction, sig, &act, nullptr, 8);
  }

  int floor = std::max(plan_fd_floor(plan), std::max(report_fd, hold_fd) + 1);

  for (auto& o : plan.objects) {
    if (o.how != How::Inherit) continue;
    o.tmp[0] = fcntl(o.inherit_fd, F_DUPFD, floor);
    if (o.tmp[0] < 0) fail(report_fd, kStepSaveInherited, o.inherit_fd);
  }
  for (size_t i = 0; i < plan.objects.size(); ++i) {
    FdObject& o = plan.objects[i];
    int first_fd = -1;
    for (const auto& t : plan.targets)
      if (t.object == i) {
        first_fd = t.fd;
        break;
      }
    if (o.how == How::Inherit) continue;
    if (o.how == How::Pipe) {
      int p[2];
      if (pipe2(p, o.flags) != 0) fail(report_fd, kStepPipe, first_fd);
      if (!o.data.empty()) {
        if (o.data.size() > 65536 && fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(o.data.size())) < 0)
          fail(report_fd, kStepPipeData, first_fd);
        int fl = fcntl(p[1], F_GETFL);
        if (fl < 0 || fcntl(p[1], F_SETFL, fl | O_NONBLOCK) != 0) fail(report_fd, kStepPipeData, first_fd);
        size_t done = 0;
        while (done < o.data.size()) {
          ssize_t n = ::write(p[1], o.data.data() + done, o.data.size() - done);
          if (n <= 0) fail(report_fd, kStepPipeData, first_fd);
          done += static_cast<size_t>(n);
        }
        if (fcntl(p[1], F_SETFL, fl) != 0) fail(report_fd, kStepPipeData, first_fd);
      }
      o.tmp[0] = move_high(p[0], floor);
      o.tmp[1] = move_high(p[1], floor);
      if (o.tmp[0] < 0 || o.tmp[1] < 0) fail(report_fd, kStepMoveHigh, first_fd);
      continue;
    }
    int fd = open_object(o);
    if (fd == -2) fail(report_fd, kStepSeek, first_fd);
    if (fd == -3) fail(report_fd, kStepSeals, first_fd);
    if (fd < 0) {
      int32_t step = o.how == How::Eventfd    ? kStepEventfd
                     : o.how == How::Memfd    ? kStepMemfd
                     : o.how == How::Signalfd ? kStepSignalfd
                     : o.how == How::Timerfd  ? kStepTimerfd
                     : o.how == How::Epoll    ? kStepEpoll
                                              : kStepOpen;
      fail(report_fd, step, first_fd);
    }
    o.tmp[0] = move_high(fd, floor);
    if (o.tmp[0] < 0) fail(report_fd, kStepMoveHigh, first_fd);
  }
  for (const auto& t : plan.targets) {
    const FdObject& o = plan.objects[t.object];
    int src = o.tmp[o.how == How::Pipe ? t.end : 0];
    if (dup3(src, t.fd, t.cloexec ? O_CLOEXEC : 0) < 0) fail(report_fd, kStepDup, t.fd);
  }
  for (const auto& e : plan.epoll_targets) {
    epoll_event ev{};
    ev.events = e.events;
    ev.data.u64 = e.data;
    if (epoll_ctl(e.epfd, EPOLL_CTL_ADD, e.fd, &ev) != 0) fail(report_fd, kStepEpollCtl, e.epfd);
  }
  // Close everything else: the temporaries and whatever wpckpt had open.
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

  if (!plan.root.empty() && plan.root != "/" && chroot(plan.root.c_str()) != 0) fail(report_fd, kStepRoot, -1);
  if (!plan.cwd.empty() && chdir(plan.cwd.c_str()) != 0) fail(report_fd, kStepCwd, -1);
  ::umask(plan.umask);
  for (const auto& l : plan.limits) {
    if (prlimit(0, static_cast<__rlimit_resource>(l.resource), &l.value, nullptr) != 0)
      fail(report_fd, kStepRlimit, l.resource);
  }
  if (plan.set_personality && ::personality(plan.personality) < 0) fail(report_fd, kStepPersonality, -1);

  ChildReport ready{};
  if (::write(report_fd, &ready, sizeof ready) != sizeof ready) _exit(127);
  char c;
  while (::read(hold_fd, &c, 1) < 0 && errno == EINTR) {
  }
  _exit(127);  // wpckpt went away before taking over: nothing half-restored stays
}

}  // namespace wpckpt::restore
