#include "tracker/vma_query.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <string>

#include "lib/base/uapi/procmap_query.hpp"

namespace wpckpt::tracker {

Result<VmaQuery> VmaQuery::open(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/maps";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open", path);
  return VmaQuery(std::move(fd));
}

bool VmaQuery::covering(uint64_t addr, uint64_t& start, uint64_t& end) {
  if (!supported_) return false;
  uapi::ProcmapQuery q{};
  q.size = sizeof q;
  q.query_addr = addr;
  if (ioctl(fd_.get(), uapi::kProcmapQuery, &q) != 0) {
    if (errno == ENOTTY || errno == EINVAL) supported_ = false;
    return false;  // ENOENT: nothing mapped there
  }
  start = q.vma_start;
  end = q.vma_end;
  return true;
}

bool VmaQuery::edges_clean(uint64_t start, uint64_t end) {
  uint64_t s = 0, e = 0;
  if (covering(start, s, e) && s != start) return false;
  if (covering(end - 1, s, e) && e != end) return false;
  return true;
}

}  // namespace wpckpt::tracker
