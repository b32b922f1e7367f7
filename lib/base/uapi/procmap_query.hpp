// PROCMAP_QUERY ioctl on /proc/PID/maps (Linux 6.11+), absent from the 6.1
// headers. Values from include/uapi/linux/fs.h.
#pragma once

#include <cstdint>

namespace wpckpt::uapi {

constexpr unsigned long kProcmapQuery = 0xC0686611;  // _IOWR('f', 17, struct procmap_query)
constexpr uint64_t kProcmapQueryCoveringOrNextVma = 0x10;

struct ProcmapQuery {
  uint64_t size;  // sizeof(ProcmapQuery)
  uint64_t query_flags;
  uint64_t query_addr;
  uint64_t vma_start, vma_end;  // out
  uint64_t vma_flags, vma_page_size, vma_offset, inode;
  uint32_t dev_major, dev_minor;
  uint32_t vma_name_size, build_id_size;
  uint64_t vma_name_addr, build_id_addr;
};
static_assert(sizeof(ProcmapQuery) == 104);

}  // namespace wpckpt::uapi
