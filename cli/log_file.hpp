// --log-file FILE (CRIU's -o): the log of one verb written to a file. A
// relative FILE lies inside the images directory (-D), as in CRIU; an absolute
// one is used as given. While it is open, log messages go there instead of
// stderr (errors are also still printed on stderr).
//
// A pre-dump or dump creates -D only at its commit, and an empty -D must stay
// empty until then (dump-format/FORMAT.md, "Atomic commit"): its log is
// written as a hidden sibling ".NAME.log-XXXXXX" and moved into -D by
// settle(), after the commit or after a failure (then -D is created for it
// if needed, as CRIU leaves its log in -D).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::cli {

class LogFile {
 public:
  enum class ImagesDir { New, Existing };

  static Result<std::unique_ptr<LogFile>> open(const std::filesystem::path& images_dir, const std::string& name,
                                               ImagesDir images);
  ~LogFile();  // messages go back to stderr
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  // Moves a file written beside a new -D into it (no-op otherwise). Never
  // replaces a file of the image: if that name is taken, the log stays where
  // it is and a warning on stderr says where.
  void settle();
  const std::filesystem::path& path() const { return final_; }

 private:
  LogFile(UniqueFd fd, std::filesystem::path final_path, std::filesystem::path pending, std::filesystem::path dir);
  UniqueFd fd_;
  std::filesystem::path final_, pending_, images_dir_;
};

// Runs `verb` with its log in `name` (no file when `name` is empty) and
// settles the file afterwards, whatever the verb's outcome; returns its exit
// code (or the error's, when the file cannot be opened).
int run_with_log_file(const std::filesystem::path& images_dir, const std::string& name, LogFile::ImagesDir images,
                      bool json, const std::function<int()>& verb);

// The same for a verb that writes a new image at `images_dir`, or, with
// `to_page_server`, nothing here: its relative log file is then relative to
// the working directory.
int run_with_new_image_log(const std::filesystem::path& images_dir, bool to_page_server, const std::string& name,
                           bool json, const std::function<int()>& verb);

}  // namespace wpckpt::cli
