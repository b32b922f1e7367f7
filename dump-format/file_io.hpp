// Files and directories of an image: created private (0600/0700), written
// completely, made durable, and committed with one atomic rename that never
// replaces an existing image.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::image {

// Creates the hidden temporary sibling ".NAME.tmp-XXXXXX" of `dir` (0700).
// Fails with EEXIST if `dir` exists.
Result<std::filesystem::path> make_temp_sibling(const std::filesystem::path& dir);
// Creates `path` (0600, must not exist) for writing.
Result<UniqueFd> create_private_file(const std::filesystem::path& path);
Result<void> write_all(int fd, std::span<const std::byte> data, const std::filesystem::path& path);
Result<void> pwrite_all(int fd, std::span<const std::byte> data, off_t offset, const std::filesystem::path& path);
Result<void> pread_exact(int fd, std::span<std::byte> out, uint64_t offset, const std::filesystem::path& path);
// Creates, writes and fsyncs a whole file.
Result<void> write_private_file(const std::filesystem::path& path, std::span<const std::byte> data);
Result<void> fsync_fd(int fd, const std::filesystem::path& path);
Result<void> fsync_dir(const std::filesystem::path& dir);
// fsync `tmp`, rename it to `dir` unless `dir` exists, fsync the parent.
Result<void> commit_directory(const std::filesystem::path& tmp, const std::filesystem::path& dir);
// Reads a whole regular file of at most `max_size` bytes.
Result<std::vector<std::byte>> read_small_file(const std::filesystem::path& path, uint64_t max_size);
// Best effort: removes a directory tree we created.
void remove_tree(const std::filesystem::path& dir) noexcept;

}  // namespace wpckpt::image
