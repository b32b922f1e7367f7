// Where a process tree's image is written (lib/state/tree_state.hpp): a
// locked hidden sibling of -D (".NAME.tmp-XXXXXX", as for one image)
// receives each member's image, committed into it by the member's own
// writer, then tree.json; one rename makes it -D. A dump that fails or is
// interrupted leaves no image, not even a partial tree.
#pragma once

#include <filesystem>
#include <optional>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/state/tree_state.hpp"

namespace wpckpt::dump {

class TreeImageDir {
 public:
  // -D must be absent or an empty directory, as for one image.
  static Result<TreeImageDir> create(const std::filesystem::path& dir);
  TreeImageDir(TreeImageDir&&) = default;
  TreeImageDir& operator=(TreeImageDir&&) = delete;
  ~TreeImageDir();

  // Where member `pid`'s writer puts its image (inside the hidden directory).
  std::filesystem::path member(int pid) const { return tmp_ / state::member_dir(pid); }
  // Writes tree.json and renames the whole to -D.
  Result<void> commit(const state::TreeState& tree);

 private:
  TreeImageDir(std::filesystem::path dir, std::filesystem::path tmp, UniqueFd lock, bool dir_existed)
      : dir_(std::move(dir)), tmp_(std::move(tmp)), lock_(std::move(lock)), dir_existed_(dir_existed) {}
  std::filesystem::path dir_, tmp_;
  UniqueFd lock_;
  bool dir_existed_ = false;
  bool committed_ = false;
};

// The parent of member `pid`'s image given the tree's parent `prev`: a tree's
// image of the same pid (none when the process is new since), or, for the
// root, a single image (the process had no children at the pre-dump).
std::optional<std::filesystem::path> member_parent(const std::optional<std::filesystem::path>& prev, int pid,
                                                   int root);

}  // namespace wpckpt::dump
