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

struct ChildPlan {
  int pid = 0;
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
Result<void> plan_fds(const state::ProcessState& state, ChildPlan& plan, const ImageFileReader& read_image_file);

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
};

// Runs in the child (after clone3): performs the plan, writes a ChildReport to
// `report_fd`, then blocks reading `hold_fd` until it is ptrace-stopped and
// rebuilt; EOF there (wpckpt gone) makes it exit. `parent` > 0: the child
// also dies with that parent (PR_SET_PDEATHSIG, SIGKILL; restore clears it
// once it has seized the child, whose own death is then PTRACE_O_EXITKILL's).
// No step blocks (files are opened by wpckpt beforehand). Never returns.
[[noreturn]] void run_child_plan(ChildPlan& plan, int report_fd, int hold_fd, pid_t parent);

}  // namespace wpckpt::restore
