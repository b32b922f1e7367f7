// Copies pages out of a running process: process_vm_readv with many remote
// ranges per call into one bounded buffer (sized by the work: the bytes of
// the runs asked for, capped by batch_bytes; kept for later calls) or into
// the caller's own memory (RoomFn), falling back to /proc/PID/mem
// (which may read PROT_NONE memory, FOLL_FORCE) for what it refuses. Pages
// that cannot be read at all — the area vanished meanwhile, or a file mapping
// past the end of its file — are reported as holes instead of failing.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "lib/base/page_buffer.hpp"
#include "lib/base/result.hpp"
#include "lib/base/uapi/memory.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::tracker {

using uapi::kPageSize;

struct PageRun {
  uint64_t addr = 0;
  uint64_t pages = 0;
  uint64_t end() const { return addr + pages * kPageSize; }
};

struct ReadStats {
  uint64_t pages_read = 0, pages_unreadable = 0, syscalls = 0, fallback_reads = 0;
};

class PageReader {
 public:
  static constexpr size_t kDefaultBatchBytes = 16u << 20;
  // use_vm_readv false: everything through /proc/PID/mem (process_vm_readv
  // switched off or missing), one read per run instead of one per batch.
  static Result<PageReader> open(pid_t pid, size_t batch_bytes = kDefaultBatchBytes, bool use_vm_readv = true);

  // Data for [addr, addr + data.size()); valid only during the call.
  using DataFn = std::function<Result<void>(uint64_t addr, std::span<const std::byte> data)>;
  using HoleFn = std::function<Result<void>(uint64_t addr, uint64_t pages)>;
  // Where to read next instead of the reader's own buffer (the image
  // writer's batch: image::ImageWriter::page_room): at most `bytes`, at
  // least a page; called before each read, after fn has taken the last one.
  using RoomFn = std::function<std::span<std::byte>(size_t bytes)>;
  // `runs` ascending and disjoint; fn and hole are called in address order.
  Result<void> read(std::span<const PageRun> runs, const DataFn& fn, const HoleFn& hole, const RoomFn& room = {});

  const ReadStats& stats() const { return stats_; }
 private:
  PageReader(pid_t pid, UniqueFd mem, size_t batch_bytes, bool use_vm_readv);
  Result<size_t> read_fallback(uint64_t addr, std::byte* out, size_t len);
  // Grows buffer_ to what `runs` need, at most batch_bytes_; returns its usable size.
  Result<size_t> size_buffer(std::span<const PageRun> runs);
  // Where the next batch goes: the caller's room, else buffer_.
  Result<std::span<std::byte>> destination(std::span<const PageRun> runs, const RoomFn& room);
  pid_t pid_;
  bool use_vm_readv_ = true;
  UniqueFd mem_;
  size_t batch_bytes_;
  PageBuffer buffer_;
  ReadStats stats_;
};

}  // namespace wpckpt::tracker
