// Content digests of image files and checksums of compressed frames:
// XXH3-128 (xxhash), written as 32 lowercase hex digits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "lib/base/result.hpp"

namespace wpckpt::image {

struct Digest128 {
  uint64_t high = 0, low = 0;
  bool operator==(const Digest128&) const = default;
  std::string hex() const;
  static bool parse_hex(const std::string& text, Digest128& out);
};

Digest128 digest_bytes(std::span<const std::byte> data);
// 64-bit checksum for frames and headers.
uint64_t checksum64(std::span<const std::byte> data);
// Digest of a whole file, read in large chunks.
Result<Digest128> digest_file(const std::filesystem::path& path);
// The digest of what an open file holds from its start (`path` for messages).
Result<Digest128> digest_fd(int fd, const std::filesystem::path& path);

// Incremental digest for files written as a stream.
class StreamDigest {
 public:
  StreamDigest();
  ~StreamDigest();
  StreamDigest(const StreamDigest&) = delete;
  StreamDigest& operator=(const StreamDigest&) = delete;
  void update(std::span<const std::byte> data);
  Digest128 finish() const;

 private:
  void* state_;
};

}  // namespace wpckpt::image
