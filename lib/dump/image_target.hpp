// Where a pre-dump or a dump writes its image: the local directory -D (its
// parent a local chain), or, with --page-server, a page server that stores it
// under the last component of -D and resolves the parent, given relative to
// -D as in CRIU, on its side (lib/net/page_server.hpp). Either way the
// capture gets the parent's metadata to decide whether its delta is exact.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>

#include "dump-format/image.hpp"
#include "lib/net/remote_sink.hpp"

namespace wpckpt::dump {

struct ImageTarget {
  std::unique_ptr<image::ImageWriter> writer;
  nlohmann::json parent_metadata;  // null: no parent
  const nlohmann::json* parent() const { return parent_metadata.is_null() ? nullptr : &parent_metadata; }
  // The pages the parent stored (its "tracking" record), 0 if unknown: the
  // size a delta taken at the same pace will have, to warm the writer for.
  uint64_t parent_pages_written() const;
};

Result<ImageTarget> open_image_target(const std::filesystem::path& images_dir,
                                      const std::optional<std::filesystem::path>& prev_images_dir,
                                      const std::optional<net::PageServerTarget>& page_server, image::ImageKind kind,
                                      const image::WriterOptions& options);

}  // namespace wpckpt::dump
