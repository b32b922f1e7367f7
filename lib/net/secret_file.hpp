// The shared secret of a page server and its clients: a file only its owner
// can read, given to both sides with --secret-file. Its bytes are the TLS
// pre-shared key (secure_channel.hpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::net {

constexpr size_t kMinSecretBytes = 16, kMaxSecretBytes = 4096;

// Refuses a file that is not a regular file owned by the effective user, that
// group or others may read or write, or whose size (trailing newlines
// ignored) is outside [kMinSecretBytes, kMaxSecretBytes].
Result<std::vector<uint8_t>> load_secret(const std::filesystem::path& file);

// Writes 32 random bytes, hex encoded, to a new 0600 file.
Result<void> create_secret(const std::filesystem::path& file);

}  // namespace wpckpt::net
