// The client side of a page server: an image sink whose files go over the
// connection (image_sink.hpp), so that pre-dump and dump with --page-server
// write nothing locally. The parent named with --prev-images-dir is
// resolved by the server, relative to the new image there.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "dump-format/image.hpp"
#include "lib/net/secure_channel.hpp"

namespace wpckpt::net {

struct PageServerTarget {
  Endpoint server;
  std::filesystem::path secret_file;
};

struct RemoteImage {
  std::unique_ptr<image::ImageSink> sink;
  std::optional<image::ParentLink> parent;  // resolved by the server, with the parent's metadata
};

// Connects, names the image (the last component of `images_dir`) and its
// parent (as given, relative), and waits for the server to accept both.
Result<RemoteImage> open_remote_image(const PageServerTarget& target, const std::filesystem::path& images_dir,
                                      image::ImageKind kind, const std::optional<std::string>& parent);

}  // namespace wpckpt::net
