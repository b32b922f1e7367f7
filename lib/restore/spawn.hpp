// Creates the process that becomes the restored one: clone3 with set_tid (the
// recorded pid), runs the ChildPlan in it, and hands it back stopped in a
// blocking read, ready to be seized. Detached: an intermediate process makes
// it and exits, so that it is re-parented (to init or the nearest subreaper).
#pragma once

#include <sys/types.h>

#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/restore/child_plan.hpp"

namespace wpckpt::restore {

struct SpawnedProcess {
  pid_t pid = -1;
  bool is_our_child = false;  // false when detached
  UniqueFd hold;              // closing it makes a not yet seized child exit
  std::vector<int> sync_fds;  // the child's ends of the sync pipes, to be closed once it is seized
};

// clone3 with exit_signal SIGCHLD and set_tid = {pid}; returns the pid in the
// child's pid namespace (0 in the child). EEXIST names the pid in use.
Result<pid_t> clone_with_pid(int pid);

// `processes`: how many report ready (a tree's live members, all made by
// this one through ChildPlan::fork_children); the first failure is the error.
Result<SpawnedProcess> spawn_restored(ChildPlan& plan, bool detached, size_t processes = 1);

// SIGKILL and reap: the cleanup of a failed restore. `traced_threads` are
// threads we trace besides the leader; they are reaped first (a traced
// leader's exit is reported only after them).
void kill_spawned(SpawnedProcess& proc, const std::vector<pid_t>& traced_threads = {});

}  // namespace wpckpt::restore
