// The trust checks every reader applies to the files and directories of an
// image. An image may sit in a directory that other users can write to (a
// 1777 spool, a shared mount): a file that someone else placed or can change
// is refused, whatever its digest says (digests only catch accidents; anyone
// can recompute them). Every check is made on the opened descriptor, never
// stat-then-open:
//  - owner: the chain's owner (the current user, or with allow_other_owner
//    the owner of the newest image's directory), the same for every file and
//    directory of every image of the chain;
//  - mode: not writable by group or others (the writer makes 0700/0600);
//  - kind: a directory, or a regular file opened with O_NOFOLLOW (a symlink,
//    FIFO or device is refused, and opening never blocks).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::image {

// Which file a reader checked: a later reopen must find the same one.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t size = 0;
};

// An opened, checked file of an image.
struct CheckedFile {
  UniqueFd fd;
  FileIdentity identity;
};

// Opens an image directory. The path the user gave may lead through
// symlinks; the directory itself is checked.
Result<UniqueFd> open_image_dir(const std::filesystem::path& dir, uid_t owner);
// The owner of the directory `dir` (following symlinks), to decide the
// chain's owner before anything else is opened.
Result<uid_t> directory_owner(const std::filesystem::path& dir);

// Opens `name` inside the opened image directory `dirfd` (its path `dir` is
// for messages). ENOENT comes back unchanged so that callers can say which
// file of the image is missing.
Result<CheckedFile> open_image_file(int dirfd, const std::filesystem::path& dir, const std::string& name, uid_t owner);
// Opens `path` again (e.g. a data file evicted from a cache) and checks that
// it is still the file `expected` names.
Result<UniqueFd> reopen_image_file(const std::filesystem::path& path, uid_t owner, const FileIdentity& expected);
// Reads a whole checked file of at most `max_size` bytes.
Result<std::vector<std::byte>> read_checked_file(const CheckedFile& file, const std::filesystem::path& path,
                                                 uint64_t max_size);

}  // namespace wpckpt::image
