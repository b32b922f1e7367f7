#include "lib/fds/file_locks.hpp"

#include <fmt/core.h>
#include <sys/file.h>

#include <limits>
#include <sstream>

#include "lib/state/json_fields.hpp"

namespace wpckpt::fds {
namespace {

const char* kind_name(FileLock::Kind k) {
  switch (k) {
    case FileLock::Kind::Flock: return "flock";
    case FileLock::Kind::Posix: return "posix";
    case FileLock::Kind::Ofd: return "ofd";
  }
  return "?";
}

// One "lock:" line: "lock:\t1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
// (fs/locks.c lock_get_status: id, kind, ADVISORY, access, pid, dev:ino,
// first byte, last byte or EOF).
Result<FileLock> parse_lock_line(const std::string& line, const std::string& where) {
  std::istringstream words(line.substr(5));
  std::string id, kind, mode, access, pid, inode, start, end;
  words >> id >> kind >> mode >> access >> pid >> inode >> start >> end;
  FileLock lock;
  if (kind == "FLOCK") lock.kind = FileLock::Kind::Flock;
  else if (kind == "POSIX") lock.kind = FileLock::Kind::Posix;
  else if (kind == "OFDLCK") lock.kind = FileLock::Kind::Ofd;
  else
    return make_error(EOPNOTSUPP, "dump", fmt::format("{}: a {} lock", where, kind))
        .with_hint("leases and delegations cannot be taken again by a restore: dump the process when it holds none");
  if (access != "READ" && access != "WRITE") return make_error(EINVAL, "parse", where + ": lock line '" + line + "'");
  lock.write = access == "WRITE";
  auto first = parse_number<int64_t>(start, 10, where + " lock start");
  if (!first) return std::move(first).error();
  lock.start = *first;
  if (end != "EOF") {
    auto last = parse_number<int64_t>(end, 10, where + " lock end");
    if (!last) return std::move(last).error();
    if (*last < lock.start) return make_error(EINVAL, "parse", where + ": lock line '" + line + "'");
    lock.len = *last - lock.start + 1;
  }
  return lock;
}

}  // namespace

Result<std::vector<FileLock>> parse_fd_locks(const FdInfo& info) {
  std::vector<FileLock> out;
  for (const auto& line : info.lines) {
    if (line.rfind("lock:", 0) != 0) continue;
    WPCKPT_TRY_ASSIGN(FileLock lock, parse_lock_line(line, info.where));
    out.push_back(lock);
  }
  return out;
}

nlohmann::json locks_to_json(const std::vector<FileLock>& locks) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& l : locks)
    out.push_back({{"kind", kind_name(l.kind)}, {"write", l.write}, {"start", l.start}, {"len", l.len}});
  return out;
}

Result<std::vector<FileLock>> locks_from_json(const state::FdState& f) {
  std::vector<FileLock> out;
  if (!f.details.is_object() || !f.details.contains("locks")) return out;
  const std::string where = "fd " + std::to_string(f.fd) + " details.locks";
  const auto& arr = f.details["locks"];
  if (!arr.is_array()) return state::field_error(where, "must be an array");
  for (const auto& j : arr) {
    FileLock l;
    std::string kind;
    WPCKPT_TRY(state::read_json(j.value("kind", nlohmann::json()), kind, where + ".kind"));
    if (kind == "flock") l.kind = FileLock::Kind::Flock;
    else if (kind == "posix") l.kind = FileLock::Kind::Posix;
    else if (kind == "ofd") l.kind = FileLock::Kind::Ofd;
    else return state::field_error(where + ".kind", "must be flock, posix or ofd");
    WPCKPT_TRY(state::read_json(j.value("write", nlohmann::json()), l.write, where + ".write"));
    WPCKPT_TRY(state::read_json(j.value("start", nlohmann::json()), l.start, where + ".start"));
    WPCKPT_TRY(state::read_json(j.value("len", nlohmann::json()), l.len, where + ".len"));
    if (l.start < 0 || l.len < 0 || l.len > std::numeric_limits<int64_t>::max() - l.start)
      return state::field_error(where, "has a lock range outside the file");
    out.push_back(l);
  }
  return out;
}

std::string describe_lock(const FileLock& l) {
  std::string range = l.len == 0 ? fmt::format("bytes {}-EOF", l.start) : fmt::format("bytes {}-{}", l.start, l.start + l.len - 1);
  if (l.kind == FileLock::Kind::Flock) range = "the whole file";
  return fmt::format("{} {} lock on {}", l.write ? "write" : "read", kind_name(l.kind), range);
}

struct flock posix_lock_request(const FileLock& l) {
  struct flock req{};
  req.l_type = static_cast<short>(l.write ? F_WRLCK : F_RDLCK);
  req.l_whence = SEEK_SET;
  req.l_start = l.start;
  req.l_len = l.len;
  return req;
}

Result<void> take_description_locks(int fd, const std::vector<FileLock>& locks, const std::string& what) {
  for (const auto& l : locks) {
    int rc = 0;
    if (l.kind == FileLock::Kind::Flock) {
      rc = ::flock(fd, (l.write ? LOCK_EX : LOCK_SH) | LOCK_NB);
    } else if (l.kind == FileLock::Kind::Ofd) {
      struct flock req = posix_lock_request(l);
      rc = ::fcntl(fd, F_OFD_SETLK, &req);
    } else {
      continue;  // the process's own: lib/restore/posix_locks.hpp
    }
    if (rc != 0) {
      const int err = errno;
      return make_error(err, "take the " + describe_lock(l), what)
          .with_hint(err == EWOULDBLOCK || err == EAGAIN
                         ? "another process holds a conflicting lock on the file now: restore once it has released it"
                         : "");
    }
  }
  return ok();
}

}  // namespace wpckpt::fds
