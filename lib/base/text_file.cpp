#include "lib/base/text_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "lib/base/unique_fd.hpp"

namespace wpckpt {

Result<std::string> read_text_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open", path);
  std::string out;
  char buf[65536];  // /proc/PID/smaps of a large process: few reads
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read", path);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace wpckpt
