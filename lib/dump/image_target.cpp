#include "lib/dump/image_target.hpp"

namespace wpckpt::dump {

Result<ImageTarget> open_image_target(const std::filesystem::path& images_dir,
                                      const std::optional<std::filesystem::path>& prev_images_dir,
                                      const std::optional<net::PageServerTarget>& page_server, image::ImageKind kind,
                                      const image::WriterOptions& options) {
  std::unique_ptr<image::ImageSink> sink;
  std::optional<image::ParentLink> link;
  if (page_server) {
    std::optional<std::string> parent;
    if (prev_images_dir) parent = prev_images_dir->string();
    WPCKPT_TRY_ASSIGN(net::RemoteImage remote, net::open_remote_image(*page_server, images_dir, kind, parent));
    sink = std::move(remote.sink);
    link = std::move(remote.parent);
  } else {
    // "out/" names the directory "out".
    const std::filesystem::path dir = images_dir.has_filename() ? images_dir : images_dir.parent_path();
    WPCKPT_TRY_ASSIGN(sink, image::make_local_sink(dir, {}, options.direct_io));
    if (prev_images_dir) {
      WPCKPT_TRY_ASSIGN(link, image::link_to_parent(dir, *prev_images_dir));
    }
  }
  ImageTarget target;
  if (link) target.parent_metadata = link->metadata.is_object() ? link->metadata : nlohmann::json::object();
  WPCKPT_TRY_ASSIGN(target.writer, image::ImageWriter::create(std::move(sink), kind, link, options));
  return target;
}

uint64_t ImageTarget::parent_pages_written() const {
  const nlohmann::json* meta = parent();
  if (meta == nullptr) return 0;
  auto tracking = meta->find("tracking");
  if (tracking == meta->end() || !tracking->is_object()) return 0;
  auto pages = tracking->find("pages_written");
  return pages != tracking->end() && pages->is_number_unsigned() ? pages->get<uint64_t>() : 0;
}

}  // namespace wpckpt::dump
