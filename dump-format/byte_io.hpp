// Little-endian encoding of the binary image files (pages.idx, pages.dat),
// and the one way dump-format reports a damaged or unsupported file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "dump-format/digest.hpp"
#include "lib/base/result.hpp"

namespace wpckpt::image {

inline void put_u32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline void put_u64(std::byte* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline uint32_t get_u32(const std::byte* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint64_t get_u64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Appends little-endian values to a growing buffer.
class ByteWriter {
 public:
  void u32(uint32_t v) {
    size_t at = grow(4);
    put_u32(buf_.data() + at, v);
  }
  void u64(uint64_t v) {
    size_t at = grow(8);
    put_u64(buf_.data() + at, v);
  }
  void bytes(const char* s, size_t n) {
    size_t at = grow(n);
    std::memcpy(buf_.data() + at, s, n);
  }
  std::vector<std::byte>& buffer() { return buf_; }

 private:
  size_t grow(size_t n) {
    size_t at = buf_.size();
    buf_.resize(at + n);
    return at;
  }
  std::vector<std::byte> buf_;
};

// A damaged, truncated or unsupported image file. `file` names it (a path or
// a file name); `what` says what is wrong with it.
inline Error format_error(const std::string& file, const std::string& what) {
  return Error{0, "invalid image file", file + ": " + what,
               "the image is damaged or was not written by this wpckpt; run `wpckpt verify -D DIR` on the "
               "chain and take a new dump if it fails"};
}

std::string hex_u64(uint64_t v);  // "0x7f12..."

// Writes the start every binary image file shares (read back by
// check_binary_header): magic, version, page size, frame pages, a reserved u32.
inline void write_binary_header_start(ByteWriter& w, const char (&magic)[8], uint32_t version, uint32_t frame_pages) {
  w.bytes(magic, 8);
  w.u32(version);
  w.u32(4096);
  w.u32(frame_pages);
  w.u32(0);
}

// The start every binary image file shares: 8-byte magic, u32 version, u32
// page size, and a checksum64 of the first `checked` bytes stored right after
// them. `kind` names the file kind in errors ("pages.idx").
inline Result<void> check_binary_header(std::span<const std::byte> h, const char (&magic)[8], uint32_t version,
                                        size_t checked, const std::string& file, const char* kind) {
  if (h.size() < checked + 8) return format_error(file, "truncated (shorter than its header)");
  if (std::memcmp(h.data(), magic, 8) != 0) return format_error(file, std::string("wrong magic (not a wpckpt ") + kind + ")");
  uint32_t found = get_u32(h.data() + 8);
  if (found != version)
    return format_error(file, "version " + std::to_string(found) + " is not supported (this wpckpt reads " +
                                  std::to_string(version) + ")")
        .with_hint("the image was written by a different wpckpt version; use that version to read it");
  if (checksum64(h.first(checked)) != get_u64(h.data() + checked)) return format_error(file, "header checksum mismatch");
  if (get_u32(h.data() + 12) != 4096) return format_error(file, "page size is not 4096");
  return ok();
}

}  // namespace wpckpt::image
