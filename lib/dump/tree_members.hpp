// Which processes a dump of `-t PID` covers: PID and every descendant
// (children of any of its threads, recursively), zombies included, with the
// parent, process group and session of each (lib/state/tree_state.hpp).
// Read while the tree runs it is a guess; read again once every live member
// is frozen it is exact (a frozen process forks no more, and a zombie stays).
#pragma once

#include <sys/types.h>

#include <string_view>

#include "lib/base/result.hpp"
#include "lib/state/tree_state.hpp"

namespace wpckpt::dump {

// The tree under `root`, the root first and every parent before its
// children. ESRCH if the root is gone.
Result<state::TreeState> read_tree(pid_t root);

// Same members, same zombies, same parents, groups and sessions.
bool same_tree(const state::TreeState& a, const state::TreeState& b);

// Whether a member on which a step failed exited (or is a zombie now) since
// the tree was read, looking for up to 0.1 s: a dump then reads the tree
// again, a pre-dump drops it (drop_subtree).
bool member_gone(pid_t pid);

// Removes `pid` and the members recorded below it from `tree`.
void drop_subtree(state::TreeState& tree, pid_t pid);

// validate_tree's refusal as the dump says it: EOPNOTSUPP naming the process
// whose session or group lies outside the tree, and what to do.
Result<void> refuse_unrestorable_tree(const state::TreeState& tree, std::string_view verb);

}  // namespace wpckpt::dump
