// Who owns a temporary image directory (".NAME.tmp-XXXXXX", file_io.hpp):
// its writer holds an flock on the directory for as long as it lives, and the
// kernel drops that lock when the writer dies, however it dies. A directory
// nobody holds the lock of is therefore abandoned, whichever machine, pid
// namespace or container wrote it, and the next writer of the same image
// name removes it.
#pragma once

#include <cstddef>
#include <filesystem>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::image {

// Locks the new temporary directory `tmp` for its writer. Fails with ENOENT
// when a cleaner removed it between its creation and the lock (the caller
// makes a new one).
Result<UniqueFd> lock_temp_dir(const std::filesystem::path& tmp);

// Removes the ".NAME.tmp-*" siblings of image directory `dir` that belong to
// the current user and whose writer is gone. Only the regular files our
// writer creates are removed, through the locked directory's descriptor, so
// a path swapped meanwhile cannot redirect the removal; anything else leaves
// the directory in place. Best effort; returns how many were removed.
size_t remove_abandoned_temps(const std::filesystem::path& dir);

}  // namespace wpckpt::image
