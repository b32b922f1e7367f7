// A process tree's image (issue 15 item 2): the directory -D holds
// "tree.json" (this model) and one image per live process in the
// sub-directory named by its pid, each an ordinary image (process.json,
// pages, manifest; pre-dumps chained per process). A process without
// children is dumped as a single image, as always; "tree.json" marks a tree.
//
// Compatibility rule as for process.json: fields are only added, with a
// default; a reader refuses a `tree_version` newer than it knows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::state {

constexpr uint32_t kTreeVersion = 1;
constexpr const char* kTreeFile = "tree.json";

struct TreeMember {
  int pid = 0, ppid = 0, pgid = 0, sid = 0;
  std::string comm;
  // Exited and not waited for by its parent: restored as a zombie that
  // its parent reaps with this wait status (waitpid's, e.g. 7 << 8).
  bool zombie = false;
  int wait_status = 0;
};

struct TreeState {
  uint32_t tree_version = kTreeVersion;
  int root = 0;
  std::vector<TreeMember> processes;  // the root first, every parent before its children
};

Result<TreeState> parse_tree(std::span<const std::byte> bytes);
Result<std::string> serialize_tree(const TreeState& tree);

// The rules a restore relies on: the root first and its parent outside the
// tree, unique positive pids, every other parent an earlier live member,
// sessions and groups either a member's or the root's (the restorer's then).
Result<void> validate_tree(const TreeState& tree);

// Whether `dir` holds a process tree's image (its tree.json).
bool is_tree_image(const std::filesystem::path& dir);

// The sub-directory of a member's image.
inline std::string member_dir(int pid) { return std::to_string(pid); }

}  // namespace wpckpt::state
