// libFuzzer target: pages.idx. Each input is parsed as it is, and once more
// with its header checksum and trailer digest repaired, so the fuzzer reaches
// the extent, fresh-range and frame rules; what parses is then queried.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dump-format/byte_io.hpp"
#include "dump-format/digest.hpp"
#include "dump-format/page_index.hpp"

using namespace wpckpt::image;

namespace {

void query(const PageIndex& index) {
  uint64_t probes[] = {0, 4096, 0x7f0000000000, UINT64_MAX - 4095};
  for (const Extent& e : index.extents) {
    // Every page of an extent stands at that extent.
    if (&index.extents[index.position_at(e.start).extent] != &e) __builtin_trap();
    if (&index.extents[index.position_at(e.end() - 4096).extent] != &e) __builtin_trap();
  }
  for (uint64_t p : probes) {
    IndexPosition pos = index.position_at(p);
    if (pos.extent > index.extents.size() || pos.fresh > index.fresh.size()) __builtin_trap();
  }
  (void)index.data_file_size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  if (auto index = parse_page_index(bytes, "pages.idx")) query(*index);
  if (bytes.size() < kIndexHeaderSize + kIndexTrailerSize) return 0;
  put_u64(bytes.data() + 56, checksum64(std::span(bytes).first(56)));
  size_t trailer = bytes.size() - kIndexTrailerSize;
  Digest128 d = digest_bytes(std::span(bytes).first(trailer));
  put_u64(bytes.data() + trailer, d.high);
  put_u64(bytes.data() + trailer + 8, d.low);
  if (auto index = parse_page_index(bytes, "pages.idx")) {
    query(*index);
    // What parses encodes back to the same bytes.
    std::vector<std::byte> again = encode_index_header(index->frame_pages, index->extents.size(), index->fresh.size(),
                                                       index->frames.size(), index->stored_pages);
    size_t at = again.size();
    again.resize(at + index->extents.size() * kExtentSize);
    for (size_t i = 0; i < index->extents.size(); ++i) encode_extent(index->extents[i], again.data() + at + i * kExtentSize);
    std::vector<std::byte> tail = encode_index_tail(index->fresh, index->frames);
    again.insert(again.end(), tail.begin(), tail.end());
    if (again.size() != trailer || std::memcmp(again.data(), bytes.data(), trailer) != 0) __builtin_trap();
  }
  return 0;
}
