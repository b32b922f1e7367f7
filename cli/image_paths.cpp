#include "cli/image_paths.hpp"

#include <sys/stat.h>

namespace wpckpt::cli {

namespace fs = std::filesystem;

namespace {

bool path_exists(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// `p` made absolute, symlinks of its existing part resolved, the rest
// normalized lexically (the -D of a new image need not exist yet).
fs::path resolved(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return p.lexically_normal();
  fs::path canon = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal() : canon;
}

}  // namespace

Result<fs::path> resolve_prev_images_dir(const fs::path& images_dir, const std::string& prev) {
  fs::path given(prev);
  if (given.is_absolute()) return given;
  fs::path dir = resolved(images_dir);
  fs::path candidate = resolved(dir / given);
  if (path_exists(candidate)) return candidate;
  const std::string what = "--prev-images-dir " + prev;
  if (path_exists(given)) {
    fs::path from_cwd = resolved(given);
    return make_error(ENOENT, "open parent image",
                      what + ": " + candidate.string() + " (a relative path is relative to -D, as in CRIU) does not " +
                          "exist, but " + prev + " exists relative to the working directory")
        .with_hint("pass it relative to -D (--prev-images-dir " + from_cwd.lexically_relative(dir).string() +
                   ") or as an absolute path (--prev-images-dir " + from_cwd.string() + ")");
  }
  return make_error(ENOENT, "open parent image", what + ": " + candidate.string())
      .with_hint("a relative --prev-images-dir is relative to -D (as in CRIU), e.g. -D imgs/2 --prev-images-dir ../1");
}

Result<std::optional<fs::path>> parent_image(const fs::path& images_dir, const std::string& prev, bool to_page_server) {
  if (prev.empty()) return std::optional<fs::path>();
  if (to_page_server) return std::optional<fs::path>(prev);
  WPCKPT_TRY_ASSIGN(fs::path where, resolve_prev_images_dir(images_dir, prev));
  return std::optional<fs::path>(where);
}

}  // namespace wpckpt::cli
