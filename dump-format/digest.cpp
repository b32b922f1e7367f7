#include "dump-format/digest.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "lib/base/unique_fd.hpp"

namespace wpckpt::image {

std::string Digest128::hex() const {
  static const char* digits = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = digits[(high >> (4 * i)) & 0xf];
    out[31 - i] = digits[(low >> (4 * i)) & 0xf];
  }
  return out;
}

bool Digest128::parse_hex(const std::string& text, Digest128& out) {
  if (text.size() != 32) return false;
  uint64_t parts[2] = {0, 0};
  for (size_t i = 0; i < 32; ++i) {
    char c = text[i];
    uint64_t v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else return false;
    parts[i / 16] = (parts[i / 16] << 4) | v;
  }
  out.high = parts[0];
  out.low = parts[1];
  return true;
}

Digest128 digest_bytes(std::span<const std::byte> data) {
  XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  return {h.high64, h.low64};
}

uint64_t checksum64(std::span<const std::byte> data) { return XXH3_64bits(data.data(), data.size()); }

StreamDigest::StreamDigest() : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}
StreamDigest::~StreamDigest() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void StreamDigest::update(std::span<const std::byte> data) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), data.data(), data.size());
}
Digest128 StreamDigest::finish() const {
  XXH128_hash_t h = XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_));
  return {h.high64, h.low64};
}

Result<Digest128> digest_file(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return errno_error("open", path.string());
  return digest_fd(fd.get(), path);
}

Result<Digest128> digest_fd(int fd, const std::filesystem::path& path) {
  if (::lseek(fd, 0, SEEK_SET) < 0) return errno_error("seek", path.string());
  StreamDigest digest;
  std::vector<std::byte> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read", path.string());
    }
    if (n == 0) break;
    digest.update(std::span(buf.data(), static_cast<size_t>(n)));
  }
  return digest.finish();
}

}  // namespace wpckpt::image
