// Reading a tree image's tree.json (lib/state/tree_state.hpp) as untrusted
// input: a regular file, private to its owner, of a bounded size; another
// user's only when the caller allows it (restore --allow-other-owner).
#pragma once

#include <filesystem>

#include "lib/base/result.hpp"
#include "lib/state/tree_state.hpp"

namespace wpckpt::state {

Result<TreeState> read_tree_file(const std::filesystem::path& dir, bool allow_other_owner);

}  // namespace wpckpt::state
