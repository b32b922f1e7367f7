#include "dump-format/frame_codec.hpp"

#include <zstd.h>

#include "dump-format/byte_io.hpp"
#include "dump-format/digest.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::image {

std::vector<std::byte> encode_data_header(uint32_t frame_pages) {
  ByteWriter w;
  write_binary_header_start(w, kDataMagic, kDataVersion, frame_pages);
  w.u64(checksum64(std::span(w.buffer().data(), 24)));
  return std::move(w.buffer());
}

Result<void> check_data_header(std::span<const std::byte> h, uint32_t frame_pages, const std::string& file) {
  WPCKPT_TRY(check_binary_header(h, kDataMagic, kDataVersion, 24, file, "pages.dat"));
  if (get_u32(h.data() + 16) != frame_pages)
    return format_error(file, "frame size " + std::to_string(get_u32(h.data() + 16)) + " pages differs from pages.idx (" +
                                  std::to_string(frame_pages) + ")");
  if (get_u32(h.data() + 20) != 0) return format_error(file, "reserved header field is not zero");
  return ok();
}

size_t frame_compress_bound(size_t raw_bytes) { return ZSTD_compressBound(raw_bytes); }

FrameCompressor::FrameCompressor(int level) : ctx_(ZSTD_createCCtx()) {
  auto* c = static_cast<ZSTD_CCtx*>(ctx_);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);  // our checksum covers the compressed bytes
  ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0);
}
FrameCompressor::~FrameCompressor() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(ctx_)); }

Result<size_t> FrameCompressor::compress(std::span<const std::byte> raw, std::vector<std::byte>& out) {
  if (!ctx_) return make_error(ENOMEM, "ZSTD_createCCtx");
  size_t bound = ZSTD_compressBound(raw.size());
  if (scratch_size_ < bound) {
    scratch_.reset(new std::byte[bound]);  // default-initialised: not zeroed
    scratch_size_ = bound;
  }
  size_t n = ZSTD_compress2(static_cast<ZSTD_CCtx*>(ctx_), scratch_.get(), bound, raw.data(), raw.size());
  if (ZSTD_isError(n)) return Error{0, "zstd compress", ZSTD_getErrorName(n), {}};
  out.insert(out.end(), scratch_.get(), scratch_.get() + n);
  return n;
}

Result<void> check_frame(std::span<const std::byte> compressed, const FrameEntry& entry, const std::string& file,
                         uint64_t frame) {
  const std::string where = "frame " + std::to_string(frame);
  if (compressed.size() != entry.compressed_size) return format_error(file, where + ": truncated");
  if (checksum64(compressed) != entry.checksum) return format_error(file, where + ": checksum mismatch");
  unsigned long long declared = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (declared != uint64_t{entry.raw_pages} * kPageSize) return format_error(file, where + ": zstd frame declares a different size");
  if (ZSTD_findFrameCompressedSize(compressed.data(), compressed.size()) != compressed.size())
    return format_error(file, where + ": zstd frame length differs from the index");
  return ok();
}

FrameDecompressor::FrameDecompressor() : ctx_(ZSTD_createDCtx()) {
  // Frames are at most 4 MiB; refuse window sizes a damaged header could claim.
  ZSTD_DCtx_setParameter(static_cast<ZSTD_DCtx*>(ctx_), ZSTD_d_windowLogMax, 23);
}
FrameDecompressor::~FrameDecompressor() { ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(ctx_)); }

Result<void> FrameDecompressor::decompress(std::span<const std::byte> compressed, const FrameEntry& entry,
                                           std::span<std::byte> out, const std::string& file, uint64_t frame) {
  std::string where = "frame " + std::to_string(frame);
  if (!ctx_) return make_error(ENOMEM, "ZSTD_createDCtx");
  if (out.size() != uint64_t{entry.raw_pages} * kPageSize) return format_error(file, where + ": wrong output size");
  WPCKPT_TRY(check_frame(compressed, entry, file, frame));
  size_t n = ZSTD_decompressDCtx(static_cast<ZSTD_DCtx*>(ctx_), out.data(), out.size(), compressed.data(),
                                 compressed.size());
  if (ZSTD_isError(n)) return format_error(file, where + ": zstd: " + ZSTD_getErrorName(n));
  if (n != out.size()) return format_error(file, where + ": decompressed to " + std::to_string(n) + " bytes, expected " + std::to_string(out.size()));
  return ok();
}

}  // namespace wpckpt::image
