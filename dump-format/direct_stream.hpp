// The bulk of a large stream (pages.dat of a full pre-dump) written with
// O_DIRECT from two aligned staging buffers, on a thread of its own: on this
// guest a write(2) into the page cache takes fresh pages, each a host fault
// (2 GiB: 4.0 s of CPU at 0.53 GB/s, then 1.1 s of fsync), where O_DIRECT
// reads our own warm buffers (1.4 s at 1.56 GB/s, 0.05 s of CPU, fsync
// 0.08 s; docs/KERNEL.md §11). The compression workers get the CPU back,
// and an image no longer evicts the page cache of everything else.
//
// Blocks of kAlign bytes at aligned offsets only: finish() leaves the last
// partial block to the caller, who writes it through the page cache.
//
// The default for local images (WriterOptions::direct_io): an image is made
// durable at commit anyway, so the page cache never let a dump finish
// sooner than the disk; it only cost CPU and evicted other programs' cache.
// A restore right after reads the image from the disk instead (measured
// here: no slower; docs/KERNEL.md §11).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <thread>

#include "lib/base/page_buffer.hpp"
#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::image {

class DirectStream {
 public:
  static constexpr uint64_t kAlign = 4096;       // the largest logical block size of common devices
  static constexpr size_t kChunk = 4u << 20;     // one write(2): the disk's rate is reached at 1-4 MiB

  // `path` opened again with O_DIRECT, to write from `offset` (aligned) on.
  // An error where the file system refuses O_DIRECT (the caller then writes
  // through the page cache, as before).
  static Result<std::unique_ptr<DirectStream>> open(const std::filesystem::path& path, uint64_t offset);
  ~DirectStream();
  DirectStream(const DirectStream&) = delete;
  DirectStream& operator=(const DirectStream&) = delete;

  // Appends; each full chunk goes to the disk on the thread while the next
  // one fills.
  Result<void> append(std::span<const std::byte> bytes);
  // Writes every whole block and waits for the thread. Returns the bytes
  // left (fewer than kAlign), which belong at offset(). The stream is done.
  Result<std::span<const std::byte>> finish();
  uint64_t offset() const { return offset_; }

 private:
  DirectStream() = default;
  void run();
  // Hands buffer `index` (`bytes` of it, at offset_) to the thread and
  // waits until the other buffer is free again.
  Result<void> submit(size_t index, size_t bytes);
  Result<void> wait_idle();
  Result<void> write_chunk(std::span<const std::byte> bytes, uint64_t at);  // on the thread

  UniqueFd fd_;
  UniqueFd buffered_fd_;  // open once the file system refused a direct write
  std::filesystem::path path_;
  PageBuffer buffers_[2];
  size_t current_ = 0, fill_ = 0;
  uint64_t offset_ = 0;  // file offset of buffers_[current_]'s first byte

  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  bool busy_ = false, stop_ = false;
  size_t job_index_ = 0, job_bytes_ = 0;
  uint64_t job_offset_ = 0;
  Result<void> status_;
};

}  // namespace wpckpt::image
