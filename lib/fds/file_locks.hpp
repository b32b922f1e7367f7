// File locks (CRIU's --file-locks): flock(2) locks, POSIX record locks
// (fcntl F_SETLK, lockf) and open-file-description locks (F_OFD_SETLK).
// The dump reads them from /proc/PID/fdinfo/N ("lock:" lines list the locks
// taken through that descriptor) and records them on the descriptor;
// restore takes them again. flock and OFD locks belong to the open file
// description: wpckpt takes them on the description it opens for the
// process (prepare()), and the process inherits them with it. POSIX locks
// belong to the process: they are taken inside it, by injection, once its
// descriptors are final (lib/restore/posix_locks.hpp), since closing any
// descriptor of the file would drop them. A lock that another process took
// meanwhile makes the restore fail, naming it.
#pragma once

#include <fcntl.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/fds/fdinfo.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::fds {

struct FileLock {
  enum class Kind { Flock, Posix, Ofd };
  Kind kind = Kind::Flock;
  bool write = false;
  int64_t start = 0;
  int64_t len = 0;  // 0: to the end of the file, however it grows
};

// The locks fdinfo lists; an error names a lock wpckpt cannot take again
// (a lease, a delegation).
Result<std::vector<FileLock>> parse_fd_locks(const FdInfo& info);
nlohmann::json locks_to_json(const std::vector<FileLock>& locks);
// details.locks of a record, checked (images are untrusted).
Result<std::vector<FileLock>> locks_from_json(const state::FdState& f);

// flock and OFD locks of `locks` on `fd` (never waiting).
Result<void> take_description_locks(int fd, const std::vector<FileLock>& locks, const std::string& what);
// A POSIX lock as fcntl(F_SETLK) takes it.
struct flock posix_lock_request(const FileLock& lock);
std::string describe_lock(const FileLock& lock);

}  // namespace wpckpt::fds
