#include "lib/dump/image_target.hpp"

namespace wpckpt::dump {

Result<ImageTarget> open_image_target(const std::filesystem::path& images_dir,
                                      const std::optional<std::filesystem::path>& prev_images_dir,
                                      const std::optional<net::PageServerTarget>& page_server, image::ImageKind kind,
                                      const image::WriterOptions& options) {
  ImageTarget target;
  if (page_server) {
    std::optional<std::string> parent;
    if (prev_images_dir) parent = prev_images_dir->string();
    WPCKPT_TRY_ASSIGN(net::RemoteImage remote, net::open_remote_image(*page_server, images_dir, kind, parent));
    target.parent_metadata = parent ? remote.parent_metadata : nlohmann::json(nullptr);
    if (parent && !target.parent_metadata.is_object()) target.parent_metadata = nlohmann::json::object();
    WPCKPT_TRY_ASSIGN(target.writer, image::ImageWriter::create(std::move(remote.sink), kind, remote.parent, options));
    return target;
  }
  if (prev_images_dir) {
    WPCKPT_TRY_ASSIGN(auto parent, image::ImageChain::open(*prev_images_dir));
    target.parent_metadata = parent->manifest(0).metadata;
    if (!target.parent_metadata.is_object()) target.parent_metadata = nlohmann::json::object();
  }
  WPCKPT_TRY_ASSIGN(target.writer, image::ImageWriter::create(images_dir, kind, prev_images_dir, options));
  return target;
}

}  // namespace wpckpt::dump
