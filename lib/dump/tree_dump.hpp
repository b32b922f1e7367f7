// Pre-dump and dump of a process tree (issue 15 item 2): `-t PID` with
// children covers PID and every descendant (tree_members.hpp), each member
// written as its own image under -D (tree_image.hpp, lib/state/tree_state.hpp).
//
// A pre-dump captures each member in turn, each its own delta against its
// image in the parent tree (a member new since is captured whole); the
// members never stop together (the dump is what makes the tree consistent).
// A dump freezes every member, top down, reads the tree again frozen and
// starts over (up to 3 times) if a process appeared or exited meanwhile;
// then captures every member's state, finds the descriptors the members
// share (tree_fds.hpp), copies every member's memory, commits every image
// and tree.json, and only then kills every member (or, with -R, lets them
// all run on). The whole tree stays frozen until its image is complete: the
// snapshot's early resume (snapshot_copy.hpp) is for one process only.
// Refused with nothing stopped: a member that a single dump would refuse,
// a session or group outside the tree, a page server (not yet for trees).
#pragma once

#include <string_view>

#include "lib/dump/dump.hpp"
#include "lib/dump/pre_dump.hpp"

namespace wpckpt::dump {

Result<DumpReport> dump_tree(const DumpRequest& request);
Result<PreDumpReport> pre_dump_tree(const PreDumpRequest& request);

// Whether `pid` has children now (a tree dump then).
bool has_children(pid_t pid);

// The error of a dump whose process tree changed in every attempt.
Error kept_changing(std::string_view verb, pid_t root);

}  // namespace wpckpt::dump
