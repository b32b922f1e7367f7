// Where the files of an image go while ImageWriter writes them: a local
// temporary directory renamed into place at commit (make_local_sink), or a
// page server's connection (lib/net/remote_sink.hpp). The writer produces
// pages.dat as one ordered stream and every other file whole, so a sink
// never seeks and a network sink never buffers an image.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "lib/base/result.hpp"

namespace wpckpt::image {

class ImageSink {
 public:
  virtual ~ImageSink() = default;
  // Appends to the stream `name` (pages.dat), created by its first append.
  virtual Result<void> append(const std::string& name, std::span<const std::byte> bytes) = 0;
  // The stream `name` is complete: a local sink writes what it still holds
  // and starts its writeback now, while the index and the manifest are
  // made, so commit() waits less.
  virtual Result<void> end_stream(const std::string& name) {
    (void)name;
    return ok();
  }
  // A whole file, written once.
  virtual Result<void> write_file(const std::string& name, std::span<const std::byte> bytes) = 0;
  // Makes every file durable and the image visible at once. Until then
  // nothing of it is visible; a sink destroyed uncommitted leaves nothing.
  virtual Result<void> commit() = 0;
  // Where the image goes, for messages ("imgs/2", "host:port imgs/2").
  virtual std::string where() const = 0;
};

// What the manifest records about the parent: its path relative to the new
// image's directory and the digest of the manifest that was checked.
struct ParentLink {
  std::string relative_path;
  std::string manifest_digest;  // hex
  // The parent manifest's metadata (whether a delta against it is exact is
  // decided from it), read with the link: the chain is opened once.
  nlohmann::json metadata = nlohmann::json::object();
};

// The local sink of image directory `dir`: refuses a `dir` that exists and is
// not an empty directory (check_image_target), writes inside a locked
// hidden sibling, renames it to `dir` at commit. `check`, if given, runs on
// the complete, durable sibling just before the rename (a page server
// verifies what it received); its error abandons the image.
// `direct_io`: WriterOptions::direct_io.
using StagedCheck = std::function<Result<void>(const std::filesystem::path& staged)>;
Result<std::unique_ptr<ImageSink>> make_local_sink(const std::filesystem::path& dir, StagedCheck check = {},
                                                   bool direct_io = true);

// The parent link of a new image at `dir` to the readable chain at `parent`.
Result<ParentLink> link_to_parent(const std::filesystem::path& dir, const std::filesystem::path& parent);

}  // namespace wpckpt::image
