// Asks the kernel about one address of a process's address space right now
// (PROCMAP_QUERY on /proc/PID/maps), without reading the whole maps file.
// The tracker uses it just before UFFDIO_REGISTER: registering a range that
// cuts through an area the program created after we read its maps would
// split that area, and a split can make the program's own mremap fail.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::tracker {

class VmaQuery {
 public:
  static Result<VmaQuery> open(pid_t pid);
  // True when no area straddles `start` or `end`: registering [start, end)
  // splits nothing. Always true on kernels without PROCMAP_QUERY.
  bool edges_clean(uint64_t start, uint64_t end);

 private:
  explicit VmaQuery(UniqueFd fd) : fd_(std::move(fd)) {}
  // The area covering addr: false when none (or the query is unsupported).
  bool covering(uint64_t addr, uint64_t& start, uint64_t& end);
  UniqueFd fd_;
  bool supported_ = true;
};

}  // namespace wpckpt::tracker
