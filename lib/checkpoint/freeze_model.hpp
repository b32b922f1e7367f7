// How long a dump would keep the process frozen, from the pages it would
// have to store. One model for `watch` and `iterate`; iterate replaces the
// per-page cost with what its own pre-dumps measured.
#pragma once

#include <cstdint>

namespace wpckpt::checkpoint {

struct FreezeModel {
  // Seizing the threads, state capture and the tracking scan of a dump
  // right after a pre-dump, measured here with a few hundred pages to
  // store: 3.9-4.5 ms at 1 GiB, 8 ms at 16 GiB (the scan walks every page
  // table: ~0.3 ms per GiB). The commit that follows is not in the freeze.
  double fixed_s = 0.008;
  // Scan, copy, compress and write of one written page while frozen
  // (docs/KERNEL.md §11: ~1.5 us copy + ~4 us zstd level 1).
  double per_page_s = 6e-6;

  double predict_s(uint64_t pages) const { return fixed_s + static_cast<double>(pages) * per_page_s; }
};

}  // namespace wpckpt::checkpoint
