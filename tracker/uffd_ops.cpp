#include "tracker/uffd_ops.hpp"

#include <sys/ioctl.h>

#include <cstdio>
#include <string>

#include "tracker/range_text.hpp"

#include "lib/base/uapi/userfaultfd.hpp"

namespace wpckpt::tracker {
Result<void> register_write_protect(int uffd, uint64_t start, uint64_t end) {
  uapi::UffdioRegister reg{{start, end - start}, uapi::kRegisterModeWp, 0};
  if (ioctl(uffd, uapi::kUffdioRegister, &reg) != 0) return errno_error("UFFDIO_REGISTER", range_text(start, end));
  return ok();
}

Result<void> unprotect(int uffd, uint64_t start, uint64_t end) {
  uapi::UffdioWriteprotect wp{{start, end - start}, 0};
  if (ioctl(uffd, uapi::kUffdioWriteprotect, &wp) != 0)
    return errno_error("UFFDIO_WRITEPROTECT(off)", range_text(start, end));
  return ok();
}

Result<void> unregister(int uffd, uint64_t start, uint64_t end) {
  uapi::UffdioRange range{start, end - start};
  if (ioctl(uffd, uapi::kUffdioUnregister, &range) != 0) return errno_error("UFFDIO_UNREGISTER", range_text(start, end));
  return ok();
}

}  // namespace wpckpt::tracker
