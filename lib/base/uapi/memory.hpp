// Memory constants that the 6.1 headers lack, and the page size every part
// of wpckpt assumes (x86_64). The image format fixes its own page size
// (dump-format/image.hpp); lib/checkpoint checks that the two agree.
#pragma once

#include <cstdint>

namespace wpckpt::uapi {

constexpr uint64_t kPageSize = 4096;

// madvise(2) advice (Linux 6.13+): guard regions are page-table markers
// inside an area, not areas of their own.
constexpr int kMadvGuardInstall = 102;
constexpr int kMadvGuardRemove = 103;

}  // namespace wpckpt::uapi
