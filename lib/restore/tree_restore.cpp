#include "lib/restore/tree_restore.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>

#include "lib/base/log.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/fds/recorded_file.hpp"
#include "lib/probe/features.hpp"
#include "lib/restore/posix_locks.hpp"
#include "lib/restore/restore_steps.hpp"
#include "lib/restore/spawn.hpp"
#include "lib/restore/sysv_shm.hpp"
#include "lib/restore/tcp_policy.hpp"
#include "lib/restore/timers.hpp"
#include "lib/restore/validate.hpp"
#include "lib/state/tree_file.hpp"

namespace wpckpt::restore {
namespace {

namespace fs = std::filesystem;
using fds::FdObject;

struct Member {
  state::TreeMember info;
  std::unique_ptr<image::ImageChain> chain;  // live members only
  state::ProcessState st;
  CredentialSwitch creds;
  size_t connections = 0;
  ChildPlan plan;  // a zombie's: its session step only
  MappingFiles files;
  std::vector<size_t> children;  // member indices, group and session leaders first
  std::unique_ptr<ptrace::Injector> inj;
  std::vector<pid_t> tids;
};

// Shared memory (a MAP_SHARED area, a deleted /dev/shm file) mapped by
// several members: one memfd, made by the root.
struct TreeShm {
  uint64_t size = 0;
  int fd = -1;  // the number wpckpt reserved
};

// What the cloned processes read (system calls only, no allocation).
struct TreeRun;
struct ForkContext {
  TreeRun* run = nullptr;
  size_t index = 0;
};
struct TreeRun {
  std::vector<Member>* members = nullptr;
  std::vector<FdObject> objects;           // made once, by the root
  std::vector<std::pair<int, int>> made_at;  // their reserved numbers (second -1: one end)
  std::vector<TreeShm> shm;
  std::vector<ForkContext> contexts;       // per member
};

// ---- in the cloned processes ----

void make_tree_objects(TreeRun& run, int report_fd) {
  for (size_t i = 0; i < run.objects.size(); ++i) {
    FdObject& o = run.objects[i];
    if (o.inherit_fd >= 0) continue;  // opened by wpckpt (a file, a socket): inherited as it is
    if (int32_t step = fds::handler_for(o.kind).create(o); step != 0) child_fail(report_fd, step, o.first_fd);
    for (int end = 0; end < 2; ++end) {
      int at = end == 0 ? run.made_at[i].first : run.made_at[i].second;
      if (o.tmp[end] < 0) continue;
      if (at < 0 || dup3(o.tmp[end], at, 0) < 0) child_fail(report_fd, fds::kStepTreeObject, o.first_fd);
      ::close(o.tmp[end]);
    }
  }
  for (const TreeShm& m : run.shm) {
    int fd = static_cast<int>(syscall(SYS_memfd_create, "wpckpt-shared", 0));
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(m.size)) != 0 || dup3(fd, m.fd, 0) < 0)
      child_fail(report_fd, fds::kStepTreeObject, -1);
    ::close(fd);
  }
}

[[noreturn]] void exit_as_zombie(const Member& m, int report_fd) {
  if (int err = set_session(m.plan); err != 0) {
    errno = err;
    child_fail(report_fd, fds::kStepSession, -1);
  }
  const int status = m.info.wait_status;
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // the status is what matters, not a second core file
    uint64_t mask = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, nullptr, 8);
    ::kill(::getpid(), sig);
  }
  _exit(WEXITSTATUS(status));
}

void fork_children(const void* context, int report_fd, int hold_fd) {
  const ForkContext& ctx = *static_cast<const ForkContext*>(context);
  TreeRun& run = *ctx.run;
  std::vector<Member>& members = *run.members;
  if (ctx.index == 0) make_tree_objects(run, report_fd);
  for (size_t c : members[ctx.index].children) {
    Member& child = members[c];
    pid_t tid = child.info.pid;
    uapi::CloneArgs args{};
    args.exit_signal = SIGCHLD;
    args.set_tid = reinterpret_cast<uint64_t>(&tid);
    args.set_tid_size = 1;
    long r = syscall(uapi::kNrClone3, &args, sizeof args);
    if (r < 0) child_fail(report_fd, fds::kStepFork, child.info.pid);
    if (r == 0) {
      if (child.info.zombie) exit_as_zombie(child, report_fd);
      run_child_plan(child.plan, report_fd, hold_fd, members[ctx.index].info.pid);
    }
    if (child.info.zombie) {
      // Exited before the dump: its SIGCHLD was delivered then, not now.
      siginfo_t si{};
      while (waitid(P_PID, static_cast<id_t>(r), &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
      }
      sigset_t chld;
      sigemptyset(&chld);
      sigaddset(&chld, SIGCHLD);
      timespec none{0, 0};
      sigtimedwait(&chld, nullptr, &none);
    }
  }
}

// ---- in wpckpt ----

// Each member's session step, from its recorded session and group: groups
// led by a member are its pid again; any other (the root's, outside the
// tree) is the restorer's group, as for one process.
void plan_sessions(std::vector<Member>& members, bool shell_job) {
  std::set<int> pids;
  for (const auto& m : members) pids.insert(m.info.pid);
  const int restorer_pgid = ::getpgrp();
  const int root_pgid = members.front().info.pgid;
  std::map<int, int> group_of;  // member pid -> its group once restored
  for (size_t i = 0; i < members.size(); ++i) {
    Member& m = members[i];
    const bool is_root = i == 0;
    const int inherited = is_root ? restorer_pgid : group_of.at(m.info.ppid);
    ChildPlan& p = m.plan;
    if (is_root && shell_job) {
      p.session = ChildPlan::Session::Keep;
    } else if (m.info.sid == m.info.pid) {
      p.session = ChildPlan::Session::Lead;
    } else if (m.info.pgid == m.info.pid) {
      p.session = ChildPlan::Session::OwnGroup;
    } else {
      int want = pids.count(m.info.pgid) && !(shell_job && m.info.pgid == root_pgid) ? m.info.pgid : restorer_pgid;
      p.session = want == inherited ? ChildPlan::Session::Keep : ChildPlan::Session::JoinGroup;
      p.join_pgid = want;
    }
    group_of[m.info.pid] = p.session == ChildPlan::Session::Keep        ? inherited
                           : p.session == ChildPlan::Session::JoinGroup ? p.join_pgid
                                                                        : m.info.pid;
  }
  // Leaders before the processes that join their groups.
  std::map<int, size_t> index_of;
  for (size_t i = 0; i < members.size(); ++i) index_of[members[i].info.pid] = i;
  for (size_t i = 1; i < members.size(); ++i) members[index_of.at(members[i].info.ppid)].children.push_back(i);
  for (auto& m : members) {
    std::stable_sort(m.children.begin(), m.children.end(), [&](size_t a, size_t b) {
      auto leads = [&](size_t k) { return members[k].plan.session == ChildPlan::Session::Lead ||
                                          members[k].plan.session == ChildPlan::Session::OwnGroup; };
      return leads(a) && !leads(b);
    });
  }
}

// Objects two or more members hold: planned once (the first record's
// handler plan, every record added), indexed in TreeFds::shared.
Result<void> plan_shared_objects(std::vector<Member>& members, TreeFds& tree, TreeRun& run) {
  for (const Member& m : members)
    for (const auto& f : m.st.fds) {
      if (f.kind != state::FdKind::Pipe) continue;
      WPCKPT_TRY_ASSIGN(auto key, tree_key(f));
      tree.pipe_ends[*key] |= (f.flags & O_ACCMODE) == O_WRONLY ? 2 : 1;
    }
  std::map<ObjectKey, std::vector<std::pair<size_t, const state::FdState*>>> records;
  for (size_t i = 0; i < members.size(); ++i)
    for (const auto& f : members[i].st.fds) {
      WPCKPT_TRY_ASSIGN(auto key, tree_key(f));
      if (!key) continue;
      if (f.kind == state::FdKind::Pipe && tree.pipe_ends[*key] != 3) continue;  // one end: as for one process
      records[*key].emplace_back(i, &f);
    }
  for (const auto& [key, list] : records) {
    std::set<size_t> holders;
    for (const auto& [i, f] : list) holders.insert(i);
    if (holders.size() < 2) continue;
    const auto& [first_member, first] = list.front();
    if (first->kind == state::FdKind::Epoll)
      return make_error(EOPNOTSUPP, "restore", "fd " + std::to_string(first->fd) + " of process " +
                                                   std::to_string(members[first_member].info.pid) +
                                                   ": an epoll instance shared between processes");
    FdObject o;
    o.kind = first->kind;
    o.first_fd = first->fd;
    image::ImageChain& chain = *members[first_member].chain;
    const fds::FdHandler& handler = fds::handler_for(o.kind);
    WPCKPT_TRY(handler.plan(*first, [&](const std::string& name) { return chain.read_file(name); }, o));
    for (const auto& [i, f] : list) {
      fds::FdTarget t{f->fd, 0, 0, f->cloexec};
      WPCKPT_TRY(handler.add(*f, o, t));
    }
    tree.shared[key] = static_cast<int>(run.objects.size());
    run.objects.push_back(std::move(o));
  }
  return ok();
}

Result<int> reserve_number(int floor, std::vector<UniqueFd>& held) {
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null) return errno_error("open", "/dev/null");
  int fd = fcntl(null.get(), F_DUPFD_CLOEXEC, floor);
  if (fd < 0) return errno_error("fcntl(F_DUPFD)", "reserved descriptor");
  held.emplace_back(fd);
  return fd;
}

// Shared memory several members map, by (device, inode): one memfd each.
Result<void> plan_shared_memory(std::vector<Member>& members, TreeRun& run, int floor, std::vector<UniqueFd>& held) {
  using Key = std::pair<uint64_t, uint64_t>;
  std::map<Key, std::set<size_t>> mappers;
  std::map<Key, uint64_t> size;
  for (size_t i = 0; i < members.size(); ++i)
    for (const auto& m : regular_mappings(members[i].st)) {
      // A SysV segment is shared by attaching it (sysv_shm.hpp).
      if (!m.file || !m.shared || m.kind != tracker::MemoryKind::Shmem || is_sysv_mapping(m)) continue;
      Key key{m.file->dev, m.file->inode};
      mappers[key].insert(i);
      size[key] = std::max(size[key], m.file_offset + (m.end - m.start));
    }
  for (const auto& [key, who] : mappers) {
    if (who.size() < 2) continue;
    WPCKPT_TRY_ASSIGN(int fd, reserve_number(floor, held));
    run.shm.push_back({size[key], fd});
    for (size_t i : who) {
      members[i].files.memfd_by_inode[key] = fd;
      members[i].plan.keep_fds.push_back(fd);
    }
  }
  return ok();
}

// Kills every member made so far unless disarmed: the root (its unseized
// descendants die with their parents: PR_SET_PDEATHSIG) and every seized one.
class KillTreeOnFailure {
 public:
  explicit KillTreeOnFailure(SpawnedProcess& root) : root_(root) {}
  ~KillTreeOnFailure() {
    if (!armed_) return;
    for (pid_t p : seized_) ::kill(p, SIGKILL);
    for (pid_t t : threads_)
      while (waitpid(t, nullptr, __WALL) < 0 && errno == EINTR) {
      }
    for (auto it = seized_.rbegin(); it != seized_.rend(); ++it) {
      if (*it == root_.pid) continue;
      while (waitpid(*it, nullptr, __WALL) < 0 && errno == EINTR) {
      }
    }
    kill_spawned(root_);
  }
  void seized(pid_t pid) { seized_.push_back(pid); }
  void thread(pid_t tid) { threads_.push_back(tid); }
  void disarm() { armed_ = false; }

 private:
  SpawnedProcess& root_;
  std::vector<pid_t> seized_, threads_;
  bool armed_ = true;
};

}  // namespace

Result<RestoreReport> restore_tree(const fs::path& dir, const RestoreOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  RestoreReport report;
  WPCKPT_TRY(probe::require_features("restore"));
  if (options.lazy)
    return make_error(EOPNOTSUPP, "restore --lazy", dir.string() + " holds a process tree")
        .with_hint("a tree is restored with all of its memory (restore without --lazy)");
  WPCKPT_TRY_ASSIGN(state::TreeState tree, state::read_tree_file(dir, options.allow_other_owner));

  std::vector<Member> members;
  members.reserve(tree.processes.size());
  image::OpenOptions open_options;
  open_options.allow_other_owner = options.allow_other_owner;
  for (const auto& info : tree.processes) {
    Member m;
    m.info = info;
    if (!info.zombie) {
      const fs::path sub = dir / state::member_dir(info.pid);
      WPCKPT_TRY_ASSIGN(m.chain, image::ImageChain::open(sub, open_options));
      WPCKPT_TRY(check_dump(*m.chain));
      WPCKPT_TRY_ASSIGN(auto bytes, m.chain->read_file(state::kProcessStateFile));
      WPCKPT_TRY_ASSIGN(m.st, state::parse(bytes));
      if (m.st.pid != info.pid)
        return make_error(EINVAL, "restore", sub.string() + " holds process " + std::to_string(m.st.pid))
            .with_hint("the image is damaged or was not written by wpckpt");
      WPCKPT_TRY(validate(m.st));
      WPCKPT_TRY_ASSIGN(m.connections, apply_tcp_policy(m.st, options.tcp));
      WPCKPT_TRY(check_timers_restorable(m.st));
      WPCKPT_TRY_ASSIGN(m.creds, plan_credentials(m.st.creds, m.chain->owner()));
      report.images = std::max(report.images, m.chain->dirs().size());
    } else {
      WPCKPT_TRY(check_id_free(info.pid, true));
    }
    members.push_back(std::move(m));
  }

  TreeRun run;
  run.members = &members;
  TreeFds tree_fds;
  WPCKPT_TRY(plan_shared_objects(members, tree_fds, run));
  size_t live = 0;
  int floor = 3;
  for (Member& m : members) {
    if (m.info.zombie) continue;
    ++live;
    WPCKPT_TRY_ASSIGN(m.plan, plan_child(m.st, *m.chain, report.warnings, &tree_fds));
    floor = std::max(floor, plan_fd_floor(m.plan));
  }
  plan_sessions(members, options.shell_job);
  // Everything wpckpt opens for any member lies above every member's numbers.
  std::vector<UniqueFd> held;
  for (Member& m : members) {
    m.plan.min_floor = floor;
    if (m.info.zombie) continue;
    WPCKPT_TRY_ASSIGN(m.files, open_files_as_owner(m.st, *m.chain, m.plan, held));
  }
  std::vector<const state::ProcessState*> states;
  for (const Member& m : members)
    if (!m.info.zombie) states.push_back(&m.st);
  WPCKPT_TRY_ASSIGN(SysvSegments segments, SysvSegments::make(states, members.front().chain->owner()));
  WPCKPT_TRY_ASSIGN(fds::ImageOwner owner, fds::image_owner(members.front().chain->dirs().front()));
  WPCKPT_TRY(fds::as_owner(owner, [&]() -> Result<void> {
    for (FdObject& o : run.objects) WPCKPT_TRY(fds::handler_for(o.kind).prepare(o, held, floor));
    return ok();
  }));
  for (FdObject& o : run.objects) {
    if (o.inherit_fd >= 0) {
      run.made_at.emplace_back(o.inherit_fd, o.inherit_fd_end1);
      continue;
    }
    WPCKPT_TRY_ASSIGN(int first, reserve_number(floor, held));
    int second = -1;
    if (o.kind == state::FdKind::Pipe) {
      WPCKPT_TRY_ASSIGN(second, reserve_number(floor, held));
    }
    run.made_at.emplace_back(first, second);
  }
  WPCKPT_TRY(plan_shared_memory(members, run, floor, held));
  for (Member& m : members)
    for (FdObject& o : m.plan.objects)
      if (o.tree_object >= 0) std::tie(o.inherit_fd, o.inherit_fd_end1) = run.made_at[static_cast<size_t>(o.tree_object)];
  run.contexts.resize(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    run.contexts[i] = {&run, i};
    if (members[i].children.empty() && i != 0) continue;
    members[i].plan.fork_children = fork_children;
    members[i].plan.fork_context = &run.contexts[i];
  }

  auto t_planned = std::chrono::steady_clock::now();
  WPCKPT_TRY_ASSIGN(SpawnedProcess root, spawn_restored(members.front().plan, options.detached, live));
  KillTreeOnFailure guard(root);
  held.clear();
  for (Member& m : members) {
    if (m.info.zombie) continue;
    WPCKPT_TRY(seize(m.info.pid));
    guard.seized(m.info.pid);
  }
  root.hold.reset();  // they are stopped: their blocking reads no longer matter
  auto t_seized = std::chrono::steady_clock::now();

  RestoreOptions fill_options = options;
  for (Member& m : members) {
    if (m.info.zombie) continue;
    WPCKPT_TRY_ASSIGN(uint64_t scratch, pick_scratch_address(m.info.pid, m.st));
    ptrace::InjectorOptions inj_options;
    inj_options.scratch_address = scratch;
    WPCKPT_TRY_ASSIGN(m.inj, ptrace::Injector::prepare(m.info.pid, inj_options));
    std::vector<int> helpers = m.plan.keep_fds;
    helpers.insert(helpers.end(), root.sync_fds.begin(), root.sync_fds.end());
    RestoreReport one;
    WPCKPT_TRY_ASSIGN(FillStats fill, rebuild_address_space(*m.inj, m.st, *m.chain, m.files, helpers, fill_options, one));
    for (auto& w : one.warnings) report.warnings.push_back("process " + std::to_string(m.info.pid) + ": " + w);
    report.pages_stored += fill.pages_stored;
    report.pages_zero += fill.pages_zero;
    report.pages_copied += fill.pages_copied;
    report.pages_kept += fill.pages_kept;
    report.bytes_written += fill.bytes_written;
    report.fill_seconds += fill.seconds;
    // Its parent is restored too: the signal it asked for when that one exits.
    if (m.info.pid != tree.root && m.st.pdeath_signal != 0) WPCKPT_TRY(set_death_signal(*m.inj, m.st.pdeath_signal));
    WPCKPT_TRY(restore_posix_locks(*m.inj, m.st));
  }
  auto t_filled = std::chrono::steady_clock::now();
  for (Member& m : members) {
    if (m.info.zombie) continue;
    WPCKPT_TRY_ASSIGN(m.tids, restore_threads(*m.inj, m.st, m.creds, [&](pid_t t) { guard.thread(t); }, nullptr));
  }

  // Past this point the processes run: nothing can be undone.
  guard.disarm();
  if (auto done = segments.finish(); !done) report.warnings.push_back(done.error().message());
  for (auto it = members.rbegin(); it != members.rend(); ++it) detach_threads(it->tids);
  for (const Member& m : members) {
    if (m.connections > 0 && options.network_lock) unlock_connections(m.info.pid, report.warnings);
    report.threads += m.tids.size();
    report.processes.push_back({m.info.pid, m.info.ppid, m.info.comm, m.info.zombie, m.tids.size()});
  }
  report.pid = root.pid;
  auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  auto t_end = std::chrono::steady_clock::now();
  log::debug("tree restore (ms): read and plan {:.1f}, spawn and seize {:.1f}, rebuild and fill {:.1f} (fill {:.1f}), "
             "threads and run {:.1f}",
             ms(t_planned - t0), ms(t_seized - t_planned), ms(t_filled - t_seized), report.fill_seconds * 1e3,
             ms(t_end - t_filled));
  report.seconds = std::chrono::duration<double>(t_end - t0).count();
  return report;
}

}  // namespace wpckpt::restore
