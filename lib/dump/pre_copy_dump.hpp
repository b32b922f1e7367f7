// `wpckpt dump --pre-copy`: a one-shot dump whose freeze lasts only as long
// as the last delta, not as the whole memory. The memory is first copied
// while the process runs (pre-dumps into hidden siblings of -D: the whole
// memory, then, while it pays, what was written meanwhile), the dump
// then freezes it only for what it wrote meanwhile (exact: the write-protect
// tracking armed by the pre-copy), and once the process is gone (or resumed,
// with --leave-running) the two images are merged into the standalone image
// at -D. The price is wall time and CPU: what the process wrote during the
// pre-copy is copied and compressed twice, and the merge copies every frame
// of the pre-copy it does not touch as it is (merge.cpp). If the merge fails
// after the process was killed, the dump is kept as a two-image chain at -D
// and its hidden parent, and said.
#pragma once

#include "lib/dump/dump.hpp"

namespace wpckpt::dump {

struct PreCopyStats {
  double pre_copy_seconds = 0;  // the pre-dumps, the process running
  uint64_t pre_copy_pages = 0;  // written by all of them
  size_t pre_copy_rounds = 0;   // the whole memory, then what it wrote during the round before
  double merge_seconds = 0;     // after the freeze
  bool merged = false;          // false: -D is a chain with `kept_parent`
  std::filesystem::path kept_parent;
};

Result<DumpReport> dump_with_pre_copy(const DumpRequest& request, PreCopyStats& stats);

// Whether `wpckpt dump` copies first when the user said neither --pre-copy
// nor --no-pre-copy (as -R's copy-on-write copy is the default unless
// --no-cow-copy): a killing one-shot dump (no parent, no page server) of a
// process without children (a tree's images are not merged) holding at
// least kPreCopyFromBytes of anonymous memory. Below that the whole freeze
// is short anyway (about 1 s per GiB here, so ~60 ms), and a second image
// and a merge would cost more wall time than the freeze they save.
constexpr uint64_t kPreCopyFromBytes = 64ull << 20;
bool pre_copy_by_default(const DumpRequest& request);

}  // namespace wpckpt::dump
