// pages.dat: a 32-byte header (magic "WPCKPDAT", version, page size, frame
// pages, header checksum) followed by independently decompressible zstd
// frames, one per FrameEntry of pages.idx. A frame is checked (checksum of
// its compressed bytes, declared and actual size) before its bytes are used.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dump-format/page_index.hpp"
#include "lib/base/result.hpp"

namespace wpckpt::image {

constexpr char kDataMagic[8] = {'W', 'P', 'C', 'K', 'P', 'D', 'A', 'T'};
constexpr uint32_t kDataVersion = 1;
constexpr uint64_t kDataHeaderSize = 32;

std::vector<std::byte> encode_data_header(uint32_t frame_pages);
Result<void> check_data_header(std::span<const std::byte> header, uint32_t frame_pages, const std::string& file);

size_t frame_compress_bound(size_t raw_bytes);

// One zstd compression context (one per worker thread).
class FrameCompressor {
 public:
  explicit FrameCompressor(int level);
  ~FrameCompressor();
  FrameCompressor(const FrameCompressor&) = delete;
  FrameCompressor& operator=(const FrameCompressor&) = delete;
  // Compresses `raw` as one frame appended to `out`; returns its size.
  Result<size_t> compress(std::span<const std::byte> raw, std::vector<std::byte>& out);

 private:
  void* ctx_;
  // Compressed bytes land here first: growing `out` by the bound would
  // zero-fill it for every frame.
  std::unique_ptr<std::byte[]> scratch_;
  size_t scratch_size_ = 0;
};

// Checks a frame's compressed bytes against its index entry without
// decompressing them: size, checksum, the size its zstd header declares, and
// that it is exactly one zstd frame (a merge copies such frames as they are).
Result<void> check_frame(std::span<const std::byte> compressed, const FrameEntry& entry, const std::string& file,
                         uint64_t frame);

// One zstd decompression context.
class FrameDecompressor {
 public:
  FrameDecompressor();
  ~FrameDecompressor();
  FrameDecompressor(const FrameDecompressor&) = delete;
  FrameDecompressor& operator=(const FrameDecompressor&) = delete;
  // Checks `compressed` against `entry` (size, checksum) and decompresses it
  // into `out`, which must be exactly entry.raw_pages pages. `file` and
  // `frame` name the frame in errors.
  Result<void> decompress(std::span<const std::byte> compressed, const FrameEntry& entry, std::span<std::byte> out,
                          const std::string& file, uint64_t frame);

 private:
  void* ctx_;
};

}  // namespace wpckpt::image
