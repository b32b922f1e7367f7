// One handler per kind of descriptor (state::FdKind), holding everything
// about that kind: what the dump records (capture), how restore checks the
// record and plans the object (plan, add), what wpckpt opens beforehand as
// the image's owner (prepare), and how the restore child creates it
// (create). One file per kind: path_fds.cpp (file, dir, devnull, tty,
// chardev, fifo), pipe_fd.cpp, eventfd_fd.cpp, epoll_fd.cpp,
// signalfd_fd.cpp, timerfd_fd.cpp, memfd_fd.cpp, inet_socket_fd.cpp,
// unix_socket_fd.cpp, inotify_fd.cpp.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/fds/fd_object.hpp"
#include "lib/fds/fdinfo.hpp"
#include "lib/fds/target_fds.hpp"
#include "lib/fds/tcp_repair.hpp"
#include "lib/netlock/network_lock.hpp"
#include "lib/state/json_fields.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::fds {

// What the user allows a dump to record (CRIU's option names).
struct CaptureOptions {
  bool tcp_established = false;  // --tcp-established: established TCP connections, with TCP repair
  bool ext_unix_sk = false;      // --ext-unix-sk: unix datagram sockets connected to a name outside
  uint64_t ghost_limit = 1 << 20;  // --ghost-limit: contents of deleted open files up to this size are saved
  bool file_locks = false;         // --file-locks: record file locks (lib/fds/file_locks.hpp)
  bool network_lock = true;        // --network-lock nftables (default) or skip (lib/netlock/network_lock.hpp)
  bool snapshot = false;           // `wpckpt snapshot`: the process runs on, so TCP repair is out (refusal hints)
  // A process tree's other members: a unix socket whose peer one of them
  // holds is a pair inside the tree, not a connection to the outside.
  std::vector<pid_t> tree_pids;
};

// What the dump knows of a descriptor before its kind fills in the rest.
struct FdSource {
  const CaptureOptions* options = nullptr;
  pid_t pid = 0;
  int fd = 0;
  std::string proc_path;  // /proc/PID/fd/N
  std::string link;       // what it points to
  struct stat st {};      // stat through the link
  const FdInfo* info = nullptr;
  TargetFds* target = nullptr;  // copies of the process's descriptors (one pidfd for all)
  UniqueFd copy;                // a socket's copy, taken by classify() and used by its capture
};

// What the capture of all descriptors has so far: the records before this
// one, and extra image files (name -> bytes, e.g. memfd contents).
struct CaptureSoFar {
  const std::vector<state::FdState>& fds;
  std::vector<std::pair<std::string, std::vector<uint8_t>>>& files;
  std::vector<std::string>& warnings;  // what the image leaves out by design (e.g. queued UDP datagrams)
  // Copies of TCP sockets the capture left in repair mode: released with
  // leave_tcp_repair() unless the dump kills the process.
  RepairedSockets& repaired;
  // Established connections are locked here before they are read (--network-lock).
  netlock::NetworkLock& network_lock;
};

using ImageFileReader = std::function<Result<std::vector<std::byte>>(const std::string& name)>;

class FdHandler {
 public:
  // Dump: the kind's `details` (and `file`) of `f` from `src`.
  virtual Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar& so_far) const = 0;

  // Restore: descriptors with equal keys share one object (dup, or the two
  // ends of a pipe). Default: the open file description (object_id).
  virtual Result<uint64_t> object_key(const state::FdState& f) const { return f.object_id; }
  // Restore, before anything exists: checks the record of the first
  // descriptor of an object and fills `o` (o.kind, o.first_fd are set).
  virtual Result<void> plan(const state::FdState& f, const ImageFileReader& files, FdObject& o) const = 0;
  // A further descriptor of the same object; `t` is its target.
  virtual Result<void> add(const state::FdState& /*f*/, FdObject& /*o*/, FdTarget& /*t*/) const { return ok(); }
  // In wpckpt, as the image's owner, before the child exists: what must be
  // opened by path is opened here (o.inherit_fd). Default: nothing.
  virtual Result<void> prepare(FdObject& /*o*/, std::vector<UniqueFd>& /*held*/, int /*floor*/) const {
    return ok();
  }
  // In the restore child, system calls only (no allocation, no locks):
  // creates the object into o.tmp[]; 0, or the failed ChildStep with errno set.
  virtual int32_t create(FdObject& o) const = 0;

 protected:
  ~FdHandler() = default;
};

// The handler of a kind (a constant object: safe to use in the restore child).
const FdHandler& handler_for(state::FdKind kind);

// Dump: which kind a descriptor is, or an error naming what is not supported.
// For a socket it keeps the copy it asked in src.copy.
Result<state::FdKind> classify(FdSource& src);

// A kind-specific field of a record, type-checked; absent keeps `out`.
template <typename T>
Result<void> detail(const state::FdState& f, const char* key, T& out) {
  std::string where = "fd " + std::to_string(f.fd) + " details";
  if (!f.details.is_object()) return state::field_error(where, "must be an object");
  auto it = f.details.find(key);
  if (it == f.details.end()) return ok();
  return state::read_json(*it, out, where + "." + key);
}

// Shared by the kinds that need them.
// The identity of the file behind a descriptor ("(deleted)" stripped from the path).
state::FileIdentity identity_of(const std::string& link, const struct stat& st);
// Pipes and FIFOs: pipe_ino, end, and the unread bytes (on the first
// descriptor of each pipe), read without consuming them.
Result<void> capture_pipe_contents(const FdSource& src, state::FdState& f, const CaptureSoFar& so_far);
// O_NONBLOCK on `fd` set or cleared as in the dumped descriptor's `flags`.
Result<void> set_nonblock_as_dumped(int fd, int flags, const std::string& what);
// Places `fd` at a number >= floor (close-on-exec) and keeps it in `held`; returns the number.
Result<int> hold_above(UniqueFd fd, int floor, std::vector<UniqueFd>& held, const std::string& what);

// The handlers (one per file).
const FdHandler& path_handler(state::FdKind kind);
const FdHandler& pipe_handler();
const FdHandler& eventfd_handler();
const FdHandler& epoll_handler();
const FdHandler& signalfd_handler();
const FdHandler& timerfd_handler();
const FdHandler& memfd_handler();
const FdHandler& inet_socket_handler();
const FdHandler& unix_socket_handler();
const FdHandler& inotify_handler();

}  // namespace wpckpt::fds
