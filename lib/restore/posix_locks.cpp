#include "lib/restore/posix_locks.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/syscall.h>

#include "lib/fds/file_locks.hpp"

namespace wpckpt::restore {

Result<void> restore_posix_locks(ptrace::Injector& inj, const state::ProcessState& st) {
  for (const auto& f : st.fds) {
    WPCKPT_TRY_ASSIGN(auto locks, fds::locks_from_json(f));
    for (const auto& lock : locks) {
      if (lock.kind != fds::FileLock::Kind::Posix) continue;
      struct flock req = fds::posix_lock_request(lock);
      WPCKPT_TRY(inj.write(inj.data(), &req, sizeof req));
      WPCKPT_TRY_ASSIGN(long rc, inj.syscall(SYS_fcntl, static_cast<uint64_t>(f.fd), F_SETLK, inj.data()));
      if (rc == 0) continue;
      const std::string file = f.file ? f.file->path : "?";
      return make_error(static_cast<int>(-rc), "take the " + fds::describe_lock(lock),
                        fmt::format("fd {} ({}) of the restored process", f.fd, file))
          .with_hint(rc == -EAGAIN || rc == -EACCES
                         ? "another process holds a conflicting lock on the file now: restore once it has released it"
                         : "");
    }
  }
  return ok();
}

}  // namespace wpckpt::restore
