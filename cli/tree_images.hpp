// The image tools (show, cat, verify, merge) on a process tree's image
// (lib/state/tree_state.hpp): -D of a tree names one member's image with
// --pid, the root's without; verify checks every member.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "lib/base/result.hpp"
#include "lib/state/tree_state.hpp"

namespace wpckpt::cli {

struct ProcessImage {
  std::filesystem::path dir;           // one process's image (the head of its chain)
  std::optional<state::TreeState> tree;  // when -D is a tree's image
  int pid = 0;                          // the member chosen (trees only)
};

// `pid` 0: the root. A --pid for an image of one process is an error.
Result<ProcessImage> process_image(const std::string& images_dir, int pid);

// A line per member for a human: "PID (comm, child of PPID)[: zombie]".
std::string tree_lines(const state::TreeState& tree);

}  // namespace wpckpt::cli
