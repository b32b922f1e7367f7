#include "lib/state/tree_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include "dump-format/file_io.hpp"

namespace wpckpt::state {

namespace {
constexpr uint64_t kMaxTreeFile = 16 << 20;
}

Result<TreeState> read_tree_file(const std::filesystem::path& dir, bool allow_other_owner) {
  const std::filesystem::path path = dir / kTreeFile;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno_error("stat", path.string());
  if (!S_ISREG(st.st_mode)) return make_error(EINVAL, "open", path.string() + ": not a regular file");
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return make_error(EPERM, "open", path.string() + ": writable by others")
        .with_hint("an image must be private to its owner (0600): someone else could have changed it");
  if (st.st_uid != ::geteuid() && !allow_other_owner)
    return make_error(EPERM, "open", path.string() + ": owned by uid " + std::to_string(st.st_uid))
        .with_hint("restore images of another user with --allow-other-owner (their credentials are checked)");
  WPCKPT_TRY_ASSIGN(auto bytes, image::read_small_file(path, kMaxTreeFile));
  return parse_tree(bytes);  // validated there
}

}  // namespace wpckpt::state
