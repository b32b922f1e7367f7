#include "dump-format/page_index.hpp"

#include <algorithm>

#include "dump-format/byte_io.hpp"
#include "dump-format/digest.hpp"
#include "dump-format/frame_codec.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::image {

IndexPosition PageIndex::position_at(uint64_t addr) const {
  auto extent = std::partition_point(extents.begin(), extents.end(), [addr](const Extent& e) { return e.end() <= addr; });
  auto range = std::partition_point(fresh.begin(), fresh.end(), [addr](const FreshRange& r) { return r.end <= addr; });
  return {static_cast<size_t>(extent - extents.begin()), static_cast<size_t>(range - fresh.begin())};
}

uint64_t PageIndex::data_file_size() const {
  return frames.empty() ? kDataHeaderSize : frames.back().offset + frames.back().compressed_size;
}

std::vector<std::byte> encode_index_header(uint32_t frame_pages, uint64_t extents, uint64_t fresh, uint64_t frames,
                                           uint64_t stored_pages) {
  ByteWriter w;
  write_binary_header_start(w, kIndexMagic, kIndexVersion, frame_pages);
  w.u64(extents);
  w.u64(fresh);
  w.u64(frames);
  w.u64(stored_pages);
  w.u64(checksum64(std::span(w.buffer().data(), 56)));
  return std::move(w.buffer());
}

void encode_extent(const Extent& e, std::byte* out) {
  put_u64(out, e.start);
  put_u64(out + 8, e.pages);
  put_u64(out + 16, e.data_page);
  put_u32(out + 24, static_cast<uint32_t>(e.kind));
  put_u32(out + 28, 0);
}

std::vector<std::byte> encode_index_tail(const std::vector<FreshRange>& fresh, const std::vector<FrameEntry>& frames) {
  ByteWriter w;
  for (const FreshRange& r : fresh) {
    w.u64(r.start);
    w.u64(r.end);
  }
  for (const FrameEntry& f : frames) {
    w.u64(f.offset);
    w.u32(f.compressed_size);
    w.u32(f.raw_pages);
    w.u64(f.checksum);
  }
  return std::move(w.buffer());
}

Result<PageIndex> parse_page_index(std::span<const std::byte> b, const std::string& file) {
  if (b.size() < kIndexHeaderSize + kIndexTrailerSize) return format_error(file, "truncated (shorter than its header)");
  WPCKPT_TRY(check_binary_header(b, kIndexMagic, kIndexVersion, 56, file, "pages.idx"));
  PageIndex index;
  index.frame_pages = get_u32(b.data() + 16);
  if (index.frame_pages == 0 || index.frame_pages > kMaxFramePages)
    return format_error(file, "frame size of " + std::to_string(index.frame_pages) + " pages is out of range");
  if (get_u32(b.data() + 20) != 0) return format_error(file, "reserved header field is not zero");
  uint64_t n_extents = get_u64(b.data() + 24), n_fresh = get_u64(b.data() + 32), n_frames = get_u64(b.data() + 40);
  index.stored_pages = get_u64(b.data() + 48);

  // Sizes: each count is bounded by the file size before multiplying.
  uint64_t body = b.size() - kIndexHeaderSize - kIndexTrailerSize;
  if (n_extents > body / kExtentSize || n_fresh > body / kFreshSize || n_frames > body / kFrameEntrySize ||
      n_extents * kExtentSize + n_fresh * kFreshSize + n_frames * kFrameEntrySize != body)
    return format_error(file, "size " + std::to_string(b.size()) + " does not match its counts (truncated or damaged)");
  size_t trailer_at = b.size() - kIndexTrailerSize;
  Digest128 trailer{get_u64(b.data() + trailer_at), get_u64(b.data() + trailer_at + 8)};
  if (!(digest_bytes(b.first(trailer_at)) == trailer)) return format_error(file, "trailer digest mismatch");

  const std::byte* p = b.data() + kIndexHeaderSize;
  index.extents.reserve(n_extents);
  uint64_t stored = 0, prev_end = 0;
  for (uint64_t i = 0; i < n_extents; ++i, p += kExtentSize) {
    Extent e{get_u64(p), get_u64(p + 8), get_u64(p + 16), static_cast<ExtentKind>(get_u32(p + 24))};
    std::string where = "extent " + std::to_string(i) + " at " + hex_u64(e.start);
    if (e.kind != ExtentKind::Zero && e.kind != ExtentKind::Stored) return format_error(file, where + ": unknown kind");
    if (get_u32(p + 28) != 0) return format_error(file, where + ": reserved field is not zero");
    if (e.start % kPageSize != 0 || e.pages == 0 || e.pages > (UINT64_MAX - e.start) / kPageSize)
      return format_error(file, where + ": not page aligned, empty, or past the end of the address space");
    if (i > 0 && e.start < prev_end) return format_error(file, where + ": overlaps or precedes the previous extent");
    if (e.kind == ExtentKind::Stored) {
      if (e.data_page != stored) return format_error(file, where + ": data position out of sequence");
      if (e.pages > index.stored_pages - stored || stored > index.stored_pages)
        return format_error(file, where + ": more stored pages than the header declares");
      stored += e.pages;
    } else if (e.data_page != 0) {
      return format_error(file, where + ": zero extent with a data position");
    }
    prev_end = e.end();
    index.extents.push_back(e);
  }
  if (stored != index.stored_pages) return format_error(file, "extents store fewer pages than the header declares");

  index.fresh.reserve(n_fresh);
  for (uint64_t i = 0; i < n_fresh; ++i, p += kFreshSize) {
    FreshRange r{get_u64(p), get_u64(p + 8)};
    if (r.start % kPageSize != 0 || r.end % kPageSize != 0 || r.start >= r.end ||
        (i > 0 && r.start < index.fresh.back().end))
      return format_error(file, "fresh range " + std::to_string(i) + " at " + hex_u64(r.start) +
                                    " is empty, unaligned or out of order");
    index.fresh.push_back(r);
  }

  uint64_t expected_frames = (stored + index.frame_pages - 1) / index.frame_pages;
  if (n_frames != expected_frames)
    return format_error(file, std::to_string(n_frames) + " frames for " + std::to_string(stored) + " stored pages, expected " +
                                  std::to_string(expected_frames));
  index.frames.reserve(n_frames);
  uint64_t offset = kDataHeaderSize, left = stored;
  for (uint64_t i = 0; i < n_frames; ++i, p += kFrameEntrySize) {
    FrameEntry f{get_u64(p), get_u32(p + 8), get_u32(p + 12), get_u64(p + 16)};
    std::string where = "frame " + std::to_string(i);
    uint32_t want_pages = static_cast<uint32_t>(std::min<uint64_t>(left, index.frame_pages));
    if (f.raw_pages != want_pages) return format_error(file, where + ": holds " + std::to_string(f.raw_pages) + " pages, expected " + std::to_string(want_pages));
    if (f.offset != offset) return format_error(file, where + ": offset out of sequence");
    if (f.compressed_size == 0 || f.compressed_size > frame_compress_bound(uint64_t{f.raw_pages} * kPageSize))
      return format_error(file, where + ": impossible compressed size");
    offset += f.compressed_size;
    left -= f.raw_pages;
    index.frames.push_back(f);
  }
  return index;
}

}  // namespace wpckpt::image
