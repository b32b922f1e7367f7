// Files and directories of an image: created private (0600/0700), written
// completely, made durable, and committed with one atomic rename that never
// replaces an existing image (only, as in CRIU, an empty directory).
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

// What stands at an image's target path when the writer starts.
enum class TargetState { Absent, EmptyDir };
// Absent, or an empty directory (CRIU's habit: `mkdir -p imgs/1` before the
// dump). Anything else is refused: ENOTEMPTY for a directory with entries,
// EEXIST for anything that is not a directory (a symlink included).
Result<TargetState> check_image_target(const std::filesystem::path& dir);
// Creates the hidden temporary sibling ".NAME.tmp-XXXXXX" of `dir` (0700).
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
// fsync `tmp`, rename it to `dir`, fsync the parent. `was` is what
// check_image_target() found: Absent renames with RENAME_NOREPLACE; EmptyDir
// renames over the directory, which the kernel does only while it is still
// empty (atomically: there is no moment without a directory at `dir`).
Result<void> commit_directory(const std::filesystem::path& tmp, const std::filesystem::path& dir, TargetState was);
// Reads a whole regular file of at most `max_size` bytes.
Result<std::vector<std::byte>> read_small_file(const std::filesystem::path& path, uint64_t max_size);
// Best effort: removes a directory tree we created.
void remove_tree(const std::filesystem::path& dir) noexcept;

}  // namespace wpckpt::image
