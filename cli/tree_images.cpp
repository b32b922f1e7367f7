#include "cli/tree_images.hpp"

#include <fmt/core.h>

#include "lib/state/tree_file.hpp"

namespace wpckpt::cli {

Result<ProcessImage> process_image(const std::string& images_dir, int pid) {
  ProcessImage out;
  if (!state::is_tree_image(images_dir)) {
    if (pid != 0)
      return make_error(EINVAL, "--pid", images_dir + " is the image of one process, not of a tree")
          .with_hint("leave out --pid for the image of one process");
    out.dir = images_dir;
    return out;
  }
  // Reading, not restoring: another user's image may be shown (its files are still checked).
  WPCKPT_TRY_ASSIGN(out.tree, state::read_tree_file(images_dir, true));
  out.pid = pid != 0 ? pid : out.tree->root;
  for (const auto& m : out.tree->processes) {
    if (m.pid != out.pid) continue;
    if (m.zombie)
      return make_error(EINVAL, "--pid", fmt::format("process {} was a zombie: it has no image", m.pid))
          .with_hint("name a live process of the tree (wpckpt show -D " + images_dir + " lists them)");
    out.dir = std::filesystem::path(images_dir) / state::member_dir(m.pid);
    return out;
  }
  return make_error(ESRCH, "--pid", fmt::format("process {} is not in the tree of {}", out.pid, images_dir))
      .with_hint("wpckpt show -D " + images_dir + " lists its processes");
}

std::string tree_lines(const state::TreeState& tree) {
  std::string out;
  for (const auto& m : tree.processes)
    out += fmt::format("  {} ({}, child of {}){}\n", m.pid, m.comm, m.ppid, m.zombie ? ": zombie" : "");
  return out;
}

}  // namespace wpckpt::cli
