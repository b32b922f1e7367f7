// Where the paths a verb is given point, with CRIU's conventions: a relative
// --prev-images-dir is relative to -D (CRIU's help: "path to images from
// previous dump (relative to -D)"), an absolute one is used as given.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "lib/base/result.hpp"

namespace wpckpt::cli {

// The parent image named by --prev-images-dir `prev` for the new image at
// `images_dir`. When a relative `prev` does not exist relative to -D but does
// relative to the working directory, the error says so and what to pass.
Result<std::filesystem::path> resolve_prev_images_dir(const std::filesystem::path& images_dir,
                                                      const std::string& prev);

// The parent as pre-dump and dump take it: none for an empty `prev`, as
// given when the image goes to a page server (which resolves it relative to
// the new image there), else resolved here.
Result<std::optional<std::filesystem::path>> parent_image(const std::filesystem::path& images_dir,
                                                          const std::string& prev, bool to_page_server);

}  // namespace wpckpt::cli
