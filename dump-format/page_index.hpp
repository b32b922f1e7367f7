// pages.idx: for every page the image knows, where its bytes are (stored in a
// frame of pages.dat, or zero), the image's fresh ranges, and the frame table
// of pages.dat. Layout (little-endian, FORMAT.md "pages.idx"):
//   header   64 bytes: magic "WPCKPIDX", version, page size, frame pages,
//                      counts, stored pages, header checksum
//   extents  32 bytes each, ascending and disjoint
//   fresh    16 bytes each, ascending and disjoint
//   frames   24 bytes each, in file order
//   trailer  16 bytes: XXH3-128 digest of everything before it
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::image {

constexpr char kIndexMagic[8] = {'W', 'P', 'C', 'K', 'P', 'I', 'D', 'X'};
constexpr uint32_t kIndexVersion = 1;
constexpr size_t kIndexHeaderSize = 64, kExtentSize = 32, kFreshSize = 16, kFrameEntrySize = 24, kIndexTrailerSize = 16;
constexpr uint32_t kMaxFramePages = 1024;  // 4 MiB frames at most

enum class ExtentKind : uint32_t { Zero = 1, Stored = 2 };  // never renumbered

struct Extent {
  uint64_t start = 0;      // address, page aligned
  uint64_t pages = 0;      // > 0
  uint64_t data_page = 0;  // Stored: index of the first page in the stored-page stream; Zero: 0
  ExtentKind kind = ExtentKind::Zero;
  uint64_t end() const { return start + pages * 4096; }
};

struct FreshRange {
  uint64_t start = 0, end = 0;
};

// Where an address stands in an index: its first extent and its first fresh
// range that end above it (the one holding it, or the next; size() if none).
struct IndexPosition {
  size_t extent = 0, fresh = 0;
};

struct FrameEntry {
  uint64_t offset = 0;           // in pages.dat
  uint32_t compressed_size = 0;
  uint32_t raw_pages = 0;        // frame_pages, except for the last frame
  uint64_t checksum = 0;         // checksum64 of the compressed bytes
};

struct PageIndex {
  uint32_t frame_pages = 0;
  uint64_t stored_pages = 0;
  std::vector<Extent> extents;
  std::vector<FreshRange> fresh;
  std::vector<FrameEntry> frames;

  IndexPosition position_at(uint64_t addr) const;  // two binary searches
  // Size pages.dat must have (header + all frames).
  uint64_t data_file_size() const;
};

// Byte encodings of the parts, for a writer that streams extents to disk.
std::vector<std::byte> encode_index_header(uint32_t frame_pages, uint64_t extents, uint64_t fresh, uint64_t frames,
                                           uint64_t stored_pages);
void encode_extent(const Extent& e, std::byte* out);
std::vector<std::byte> encode_index_tail(const std::vector<FreshRange>& fresh, const std::vector<FrameEntry>& frames);

// Checks every field and every rule of FORMAT.md; `file` names it in errors.
Result<PageIndex> parse_page_index(std::span<const std::byte> bytes, const std::string& file);

}  // namespace wpckpt::image
