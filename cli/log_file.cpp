#include "cli/log_file.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cli/output.hpp"
#include "lib/base/log.hpp"

namespace wpckpt::cli {

namespace fs = std::filesystem;

namespace {

// True when `p` (lexically normal) lies strictly inside `dir`.
bool inside(const fs::path& p, const fs::path& dir) {
  fs::path rel = p.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != ".." && rel != ".";
}

Result<UniqueFd> create_log(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return errno_error("open log file", path.string()).with_hint("the log file's directory must exist and be writable");
  return fd;
}

}  // namespace

LogFile::LogFile(UniqueFd fd, fs::path final_path, fs::path pending, fs::path dir)
    : fd_(std::move(fd)), final_(std::move(final_path)), pending_(std::move(pending)), images_dir_(std::move(dir)) {
  log::set_output_fd(fd_.get());
}

LogFile::~LogFile() { log::set_output_fd(STDERR_FILENO); }

Result<std::unique_ptr<LogFile>> LogFile::open(const fs::path& images_dir_given, const std::string& name,
                                               ImagesDir images) {
  if (name.empty()) return make_error(EINVAL, "--log-file", "(empty name)").with_hint("name a file, e.g. -o dump.log");
  fs::path given(name);
  if (given.is_absolute()) {
    WPCKPT_TRY_ASSIGN(UniqueFd fd, create_log(given));
    return std::unique_ptr<LogFile>(new LogFile(std::move(fd), given, {}, {}));
  }
  const fs::path dir = fs::path(images_dir_given).lexically_normal();
  const fs::path images_dir = dir.has_filename() ? dir : dir.parent_path();  // "imgs/1/" names "imgs/1"
  const fs::path final_path = (images_dir / given).lexically_normal();
  bool directly_in_dir = final_path.parent_path() == images_dir;
  if (images == ImagesDir::Existing || !inside(final_path, images_dir)) {
    WPCKPT_TRY_ASSIGN(UniqueFd fd, create_log(final_path));
    return std::unique_ptr<LogFile>(new LogFile(std::move(fd), final_path, {}, {}));
  }
  if (!directly_in_dir)
    return make_error(EINVAL, "--log-file", name + ": a subdirectory of the new image directory")
        .with_hint("the image directory holds only the image and its log: use a plain name (-o dump.log) or an "
                   "absolute path");
  fs::path parent = images_dir.parent_path().empty() ? fs::path(".") : images_dir.parent_path();
  std::string templ = (parent / ("." + images_dir.filename().string() + ".log-XXXXXX")).string();
  UniqueFd fd(::mkostemp(templ.data(), O_APPEND | O_CLOEXEC));
  if (!fd) return errno_error("create log file", templ).with_hint("the parent directory of -D must exist and be writable");
  return std::unique_ptr<LogFile>(new LogFile(std::move(fd), final_path, templ, images_dir));
}

void LogFile::settle() {
  if (pending_.empty()) return;
  // After a failure there may be no -D: create it for the log, as CRIU leaves
  // its log in -D (the directory then holds no image, only this file).
  if (::mkdir(images_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    std::cerr << "wpckpt: warning: the log is in " << pending_.string() << " (cannot create " << images_dir_.string()
              << ": " << std::strerror(errno) << ")\n";
    pending_.clear();
    return;
  }
  if (::renameat2(AT_FDCWD, pending_.c_str(), AT_FDCWD, final_.c_str(), RENAME_NOREPLACE) != 0) {
    std::cerr << "wpckpt: warning: the log is in " << pending_.string() << " (cannot move it to " << final_.string()
              << ": " << std::strerror(errno) << ")\n";
  }
  pending_.clear();
}

int run_with_log_file(const fs::path& images_dir, const std::string& name, LogFile::ImagesDir images, bool json,
                      const std::function<int()>& verb) {
  if (name.empty()) return verb();
  auto log_file = LogFile::open(images_dir, name, images);
  if (!log_file) return report_error(log_file.error(), json);
  int rc = verb();
  (*log_file)->settle();
  return rc;
}

int run_with_new_image_log(const std::filesystem::path& images_dir, bool to_page_server, const std::string& name,
                           bool json, const std::function<int()>& verb) {
  if (to_page_server) return run_with_log_file(".", name, LogFile::ImagesDir::Existing, json, verb);
  return run_with_log_file(images_dir, name, LogFile::ImagesDir::New, json, verb);
}

}  // namespace wpckpt::cli
