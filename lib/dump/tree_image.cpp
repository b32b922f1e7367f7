#include "lib/dump/tree_image.hpp"

#include <sys/stat.h>

#include "dump-format/file_io.hpp"
#include "dump-format/temp_dirs.hpp"

namespace wpckpt::dump {

namespace fs = std::filesystem;

Result<TreeImageDir> TreeImageDir::create(const fs::path& given) {
  const fs::path dir = given.has_filename() ? given : given.parent_path();  // "out/" names "out"
  WPCKPT_TRY_ASSIGN(image::TargetState target, image::check_image_target(dir));
  for (int attempt = 0;; ++attempt) {
    WPCKPT_TRY_ASSIGN(fs::path tmp, image::make_temp_sibling(dir));
    auto lock = image::lock_temp_dir(tmp);
    if (lock) return TreeImageDir(dir, tmp, std::move(lock).value(), target == image::TargetState::EmptyDir);
    if (lock.error().err != ENOENT || attempt == 2) return std::move(lock).error();
  }
}

TreeImageDir::~TreeImageDir() {
  if (!committed_ && !tmp_.empty()) image::remove_tree(tmp_);
}

Result<void> TreeImageDir::commit(const state::TreeState& tree) {
  WPCKPT_TRY_ASSIGN(std::string doc, state::serialize_tree(tree));
  WPCKPT_TRY(image::write_private_file(tmp_ / state::kTreeFile, std::as_bytes(std::span(doc.data(), doc.size()))));
  WPCKPT_TRY(image::commit_directory(tmp_, dir_, dir_existed_ ? image::TargetState::EmptyDir : image::TargetState::Absent));
  committed_ = true;
  return ok();
}

std::optional<fs::path> member_parent(const std::optional<fs::path>& prev, int pid, int root) {
  if (!prev) return std::nullopt;
  if (!state::is_tree_image(*prev)) return pid == root ? prev : std::nullopt;
  fs::path member = *prev / state::member_dir(pid);
  struct stat st {};
  if (::lstat(member.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  return member;
}

}  // namespace wpckpt::dump
