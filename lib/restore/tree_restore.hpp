// Restore of a process tree's image (lib/state/tree_state.hpp): every
// process with its pid, parent, session and process group, zombies
// included, and the objects the processes shared shared again.
//
// How: wpckpt plans every member as for one process (child_plan.hpp), and
// finds what two or more members hold (a pipe between them, an open file
// description inherited by fork, a unix pair whose ends are in two
// processes, shared memory). The root, cloned by wpckpt with its pid, makes
// those shared objects first at numbers wpckpt reserved, then every member
// clones its children with their pids (clone3 set_tid; group leaders
// first) after setting its own session and group, so everything is
// inherited as fork left it; then each places its own descriptors, as one
// process does, and reports ready. A zombie is cloned and exits at once with
// its recorded status (its parent's SIGCHLD for it is consumed: it was
// delivered before the dump). wpckpt then seizes every member, rebuilds and
// fills each one's memory, makes its threads, and lets them all run only
// when every one is complete; a failure kills every member it made.
//
// Not for trees yet: --lazy, and a chain read from a page server.
#pragma once

#include <filesystem>

#include "lib/base/result.hpp"
#include "lib/restore/restore.hpp"

namespace wpckpt::restore {

Result<RestoreReport> restore_tree(const std::filesystem::path& dir, const RestoreOptions& options);

}  // namespace wpckpt::restore
