// Everything the new process does for itself before it stops for the
// address-space rebuild: file descriptors at their numbers, cwd, root, umask,
// rlimits, personality. Computed by wpckpt beforehand, because the child,
// made by a raw clone3 of a possibly multi-threaded wpckpt, may only make
// system calls (no allocation, no locks). Each descriptor kind's part is its
// handler's (lib/fds/fd_handler.hpp); this file orders them.
#pragma once

#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/fds/fd_handler.hpp"
#include "lib/fds/fd_object.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

using fds::EpollTarget;
using fds::FdObject;
using fds::FdTarget;
using fds::ImageFileReader;
using fds::describe_child_step;

// Descriptors with equal keys share one object: a pipe's inode, a unix
// pair's smaller inode, else the open file description (handler object_key).
using ObjectKey = std::pair<state::FdKind, uint64_t>;

// A process tree's view of the other processes (lib/restore/tree_restore.hpp).
struct TreeFds {
  std::map<ObjectKey, int> pipe_ends;  // every pipe of the tree: bit 1 read end held, bit 2 write end
  std::map<ObjectKey, int> shared;     // objects made once for the tree -> their index (FdObject::tree_object)
};
// The key under which a tree shares the object of `f` (tree_fds.hpp on the
// dump side): pipes and unix pairs by inode, the rest by shared_id; none
// for a descriptor no other process has.
Result<std::optional<ObjectKey>> tree_key(const state::FdState& f);

struct ChildPlan {
  int pid = 0;
  int min_floor = 3;  // a tree: above every member's numbers (plan_fd_floor)
  // Session and group, set in the child before it forks its own children
  // (a tree's members; one process gets them by injection, session.hpp).
  enum class Session { Keep, Lead, OwnGroup, JoinGroup } session = Session::Keep;
  int join_pgid = 0;
  // A tree: called in the child once its signals are blocked and its session
  // set, before it makes its own descriptors, to fork its children
  // (tree_restore.cpp). System calls only, like the rest of the child.
  void (*fork_children)(const void* context, int report_fd, int hold_fd) = nullptr;
  const void* fork_context = nullptr;
  std::vector<FdObject> objects;
  std::vector<FdTarget> targets;
  std::vector<int> keep_fds;  // inherited from wpckpt and still needed (mapping files, exe, sync pipes)
  std::string root, cwd;
  uint32_t umask = 022;
  struct Limit {
    int resource;
    rlimit value;
  };
  std::vector<Limit> limits;
  bool set_personality = false;
  unsigned long personality = 0;
};

// Builds the descriptor part of the plan from the recorded descriptors, each
// checked by its kind's handler. Fails for a record that cannot be rebuilt,
// naming the descriptor. Descriptors 0-2 that are a terminal or a lone pipe
// end are wpckpt's own (the restored program talks to wpckpt's terminal or pipe).
// `tree`: the process is one of a tree's; its objects shared with others
// are inherited (FdObject::tree_object), and a pipe is lone only if the
// whole tree holds one end of it.
Result<void> plan_fds(const state::ProcessState& state, ChildPlan& plan, const ImageFileReader& read_image_file,
                      const TreeFds* tree = nullptr);

// Opens what each kind opens by path (handler prepare(): type and identity
// checked, never blocking), above every number the plan uses; `held` keeps
// them open until the child has its copies. Call it inside as_owner().
Result<void> open_fd_files(ChildPlan& plan, std::vector<UniqueFd>& held);

// Rlimits as the image has them, with hard limits that cannot be raised here
// (no CAP_SYS_RESOURCE) kept at their current value; each such case adds a warning.
void plan_limits(const state::ProcessState& state, ChildPlan& plan, std::vector<std::string>& warnings);

// Lowest descriptor number the plan leaves free (above every target and kept one).
int plan_fd_floor(const ChildPlan& plan);

// A child's failure report: which step (fds::ChildStep), which errno, which descriptor.
struct ChildReport {
  int32_t step = 0;  // 0 = ready
  int32_t err = 0;
  int32_t fd = -1;
  int32_t pid = 0;   // which process (a tree's members share one report pipe)
};

// In the child: reports the failed step (errno as it is) and exits 127.
[[noreturn]] void child_fail(int report_fd, int32_t step, int fd);
// In the child: the session step of the plan (setsid / setpgid); 0 or errno.
int set_session(const ChildPlan& plan);

// Runs in the child (after clone3): performs the plan, writes a ChildReport to
// `report_fd`, then blocks reading `hold_fd` until it is ptrace-stopped and
// rebuilt; EOF there (wpckpt gone) makes it exit. `parent` > 0: the child
// also dies with that parent (PR_SET_PDEATHSIG, SIGKILL; restore clears it
// once it has seized the child, whose own death is then PTRACE_O_EXITKILL's).
// No step blocks (files are opened by wpckpt beforehand). Never returns.
[[noreturn]] void run_child_plan(ChildPlan& plan, int report_fd, int hold_fd, pid_t parent);

}  // namespace wpckpt::restore
