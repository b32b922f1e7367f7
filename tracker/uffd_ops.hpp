// The userfaultfd ioctls the tracker issues through the agent's uffd.
// Both act on the address space of the process that created the uffd.
#pragma once

#include <cstdint>

#include "lib/base/result.hpp"

namespace wpckpt::tracker {

// UFFDIO_REGISTER in WP mode. All-or-nothing: one call per area, so that one
// unregistrable area ([vdso], a read-only shared file) spoils only itself.
Result<void> register_write_protect(int uffd, uint64_t start, uint64_t end);
// UFFDIO_WRITEPROTECT with mode 0: every page of the range counts as written
// again, so the next scan reports (and re-protects) all of it.
Result<void> unprotect(int uffd, uint64_t start, uint64_t end);
// UFFDIO_UNREGISTER: the range is no longer tracked; its protection is
// removed (`wpckpt untrack`).
Result<void> unregister(int uffd, uint64_t start, uint64_t end);

}  // namespace wpckpt::tracker
