// "0x7f00-0x7f80": how error messages name an address range.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

namespace wpckpt::tracker {

inline std::string range_text(uint64_t start, uint64_t end) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%#" PRIx64 "-%#" PRIx64, start, end);
  return buf;
}

}  // namespace wpckpt::tracker
