// What a dump cannot save yet, refused in one place so that nothing is ever
// half-checkpointed: pre-dump and dump call `refuse_unsupported_state` before
// they create an image or stop anything, and the dump again once the process
// is frozen, since a child may appear in between. (A pre-dump is
// not checked after its capture: that would waste an iteration whose pages
// are already re-protected, and only the final dump's check decides.) A refusal is an EOPNOTSUPP error that names the
// thing and says what to do; the process is left running as it was.
//
// Refused (restore would silently lose it):
//   - child processes of any thread, zombies included, unless the dump covers
//     the whole tree (tree_dump.hpp)
//   - a file descriptor of a deleted file, a deleted working directory, root
//     or executable (the contents of deleted files are not saved)
//   - file locks (flock, POSIX and OFD locks) held through any descriptor
//   - a SysV shared memory segment attached only in part
//     (sysv_shm_capture.hpp), AIO contexts, mappings of anon-inode
//     objects (io_uring rings, perf buffers, ...)
//   - a seccomp filter or strict mode on any thread
//   - namespaces other than wpckpt's own (restore creates the process in
//     the restorer's namespaces)
// Descriptor kinds, and the sockets a restore could not re-create (a
// connection to another process, connections not yet accepted, ...), are
// refused per descriptor by the fd capture (lib/dump/fd_capture.cpp and the
// handlers in lib/fds), during dump only.
//
// Restored (not refused): mappings of deleted files (private and shared;
// their bytes are in the image and come back as anonymous memory), shared
// anonymous memory, memfds, signal handlers, blocked and pending signals,
// personality, rlimits, umask, cwd/root, credentials, rseq, sigaltstack,
// interval timers and POSIX timers (lib/dump/timer_capture.hpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {

// CRIU's default --ghost-limit: deleted, open files up to this size are saved.
constexpr uint64_t kDefaultGhostLimit = 1 << 20;

// `verb` names the command in the error ("pre-dump", "dump"). A descriptor
// of a deleted regular file is refused only when it is larger than
// `ghost_limit` (its contents are then saved by the dump: lib/fds/ghost_file.cpp).
// File locks are refused unless `file_locks` (--file-locks) allows those held
// through descriptors of files and directories (lib/fds/file_locks.hpp).
// A child is refused at once, running or frozen: the dump of one process
// then becomes the dump of its tree (dump.cpp, pre_dump.cpp). `tree_member`:
// the process is dumped with its children (tree_dump.hpp), which are then no
// reason to refuse. `areas`: the process's, read in this freeze (else maps
// is read here).
Result<void> refuse_unsupported_state(pid_t pid, std::string_view verb,
                                      uint64_t ghost_limit = kDefaultGhostLimit, bool file_locks = false,
                                      bool tree_member = false, const std::vector<tracker::Vma>* areas = nullptr);

// Whether `e` is the refusal of a process with children (a single process's
// dump that met a child: the verbs then take the tree).
bool is_children_refusal(const Error& e);

// The children of `pid` (every thread's, zombies included), from
// /proc/PID/task/*/children, or by a scan of /proc when the kernel lacks that
// file. Exposed for the tests of the fallback.
Result<std::vector<pid_t>> children_of(pid_t pid);
Result<std::vector<pid_t>> children_by_proc_scan(pid_t pid);

}  // namespace wpckpt::dump
