#include "lib/restore/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/uapi/process.hpp"

namespace wpckpt::restore {

Result<pid_t> clone_with_pid(int pid) {
  pid_t tid = pid;
  uapi::CloneArgs args{};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(&tid);
  args.set_tid_size = 1;
  long r = syscall(uapi::kNrClone3, &args, sizeof args);
  if (r < 0) {
    Error e = errno_error("clone3 with set_tid", "pid " + std::to_string(pid));
    if (e.err == EEXIST) return std::move(e).with_hint("another process took that pid; wait for it to exit");
    if (e.err == EPERM)
      return std::move(e).with_hint("needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over this pid namespace");
    if (e.err == EINVAL)
      return std::move(e).with_hint("wpckpt runs in a nested pid namespace; restore from the dump's namespace");
    return e;
  }
  return static_cast<pid_t>(r);
}

namespace {

constexpr int kReportTimeoutMs = 60'000;  // no step blocks: a silent child is a broken one

Result<void> read_report(int fd, pid_t pid, size_t processes) {
  for (size_t ready = 0; ready < processes;) {
    pollfd p{fd, POLLIN, 0};
    int n_ready = ::poll(&p, 1, kReportTimeoutMs);
    if (n_ready < 0 && errno == EINTR) continue;
    if (n_ready == 0)
      return make_error(ETIMEDOUT, "start restored processes",
                        std::to_string(ready) + " of " + std::to_string(processes) + " reported ready");
    ChildReport report{};
    ssize_t n;
    do {
      n = ::read(fd, &report, sizeof report);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      int status = 0;
      std::string how = "exited early";
      if (waitpid(pid, &status, WNOHANG) == pid) {
        how = WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                  : "exited early with status " + std::to_string(WEXITSTATUS(status));
      }
      return make_error(ECHILD, "start restored process", "pid " + std::to_string(pid) + " " + how);
    }
    if (n != sizeof report) return errno_error("read from restored process", "pid " + std::to_string(pid));
    if (report.step == 0) {
      ++ready;
      continue;
    }
    const pid_t who = report.pid > 0 ? report.pid : pid;
    if (report.step == -1 || report.step == fds::kStepFork) {
      Error e = make_error(report.err, "clone3 with set_tid", "pid " + std::to_string(report.step == -1 ? pid : report.fd));
      if (report.err == EEXIST) return std::move(e).with_hint("another process took that pid; wait for it to exit");
      return e;
    }
    std::string ctx = processes > 1 ? "pid " + std::to_string(who) : "";
    if (report.fd >= 0) ctx += (ctx.empty() ? "fd " : " fd ") + std::to_string(report.fd);
    return make_error(report.err, describe_child_step(report.step), ctx);
  }
  return ok();
}

}  // namespace

Result<SpawnedProcess> spawn_restored(ChildPlan& plan, bool detached, size_t processes) {
  int report[2], hold[2];
  if (pipe2(report, O_CLOEXEC) != 0) return errno_error("pipe");
  UniqueFd report_r(report[0]), report_w(report[1]);
  if (pipe2(hold, O_CLOEXEC) != 0) return errno_error("pipe");
  UniqueFd hold_r(hold[0]), hold_w(hold[1]);
  // The child's ends must not sit on a number the plan gives a descriptor.
  int floor = plan_fd_floor(plan);
  report_w = UniqueFd(fcntl(report_w.get(), F_DUPFD_CLOEXEC, floor));
  hold_r = UniqueFd(fcntl(hold_r.get(), F_DUPFD_CLOEXEC, floor));
  if (!report_w || !hold_r) return errno_error("fcntl(F_DUPFD)", "sync pipe");

  SpawnedProcess proc;
  if (!detached) {
    const pid_t self = getpid();
    WPCKPT_TRY_ASSIGN(pid_t pid, clone_with_pid(plan.pid));
    if (pid == 0) {
      report_r.release();
      hold_w.release();
      run_child_plan(plan, report_w.get(), hold_r.get(), self);
    }
    proc.pid = pid;
    proc.is_our_child = true;
  } else {
    // The intermediate exits right after clone3: its child is re-parented.
    pid_t mid = fork();
    if (mid < 0) return errno_error("fork");
    if (mid == 0) {
      long r = -1;
      pid_t tid = plan.pid;
      uapi::CloneArgs args{};
      args.exit_signal = SIGCHLD;
      args.set_tid = reinterpret_cast<uint64_t>(&tid);
      args.set_tid_size = 1;
      r = syscall(uapi::kNrClone3, &args, sizeof args);
      // Its parent exits at once: no death signal (hold_fd's EOF ends it if wpckpt dies).
      if (r == 0) run_child_plan(plan, report_w.get(), hold_r.get(), 0);
      if (r < 0) {
        ChildReport rep{-1, errno, -1};
        [[maybe_unused]] ssize_t n = ::write(report_w.get(), &rep, sizeof rep);
      }
      _exit(r < 0 ? 1 : 0);
    }
    int status = 0;
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR) {
    }
    // If clone3 failed, the pid belongs to someone else (or no one): never
    // signal it. The report says why.
    bool cloned = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    proc.pid = cloned ? plan.pid : -1;
    proc.is_our_child = false;
  }
  proc.sync_fds = {report_w.get(), hold_r.get()};
  report_w.reset();
  hold_r.reset();
  proc.hold = std::move(hold_w);
  auto r = read_report(report_r.get(), plan.pid, processes);  // kill_spawned below is a no-op without a pid
  if (!r) {
    kill_spawned(proc);
    return std::move(r).error();
  }
  return proc;
}

void kill_spawned(SpawnedProcess& proc, const std::vector<pid_t>& traced_threads) {
  if (proc.pid <= 0) return;
  ::kill(proc.pid, SIGKILL);
  for (pid_t t : traced_threads) {
    if (t == proc.pid) continue;
    while (waitpid(t, nullptr, __WALL) < 0 && errno == EINTR) {
    }
  }
  // Our child, or our tracee (detached mode): either way its exit is ours to reap.
  while (waitpid(proc.pid, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  // Detached, its parent (init or a subreaper) reaps it after us: wait a
  // little for that, so that the pid is free again when the restore returns
  // and an immediate retry does not meet it ("in use").
  const std::string entry = "/proc/" + std::to_string(proc.pid);
  for (int i = 0; !proc.is_our_child && i < 200 && ::access(entry.c_str(), F_OK) == 0; ++i) ::usleep(10'000);
  proc.hold.reset();
  proc.pid = -1;
}

}  // namespace wpckpt::restore
