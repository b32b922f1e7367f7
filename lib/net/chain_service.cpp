#include "lib/net/chain_service.hpp"

#include <chrono>

#include "dump-format/chain_reader.hpp"
#include "dump-format/file_io.hpp"
#include "dump-format/image_files.hpp"
#include "dump-format/manifest.hpp"
#include "lib/net/page_protocol.hpp"

namespace wpckpt::net {

namespace fs = std::filesystem;

namespace {

// A restored process may sit idle for a long time between faults.
constexpr int kIdleTimeoutMs = 0;

// Every image's directory relative to `root`; a chain leading outside is refused.
Result<std::vector<std::string>> relative_paths(const image::ResolvedChain& chain, const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& img : chain.images()) {
    std::error_code ec;
    fs::path rel = fs::canonical(img->dir, ec).lexically_relative(root);
    if (ec || rel.empty() || rel.is_absolute() || *rel.begin() == "..")
      return make_error(EPERM, "page server", img->dir.string() + " (part of the chain) is outside the served directory")
          .with_hint("serve the directory that holds the whole chain");
    out.push_back(rel.string());
  }
  return out;
}

// The manifest, the index and the extra files of every image, as they are on disk.
Result<void> send_small_files(SecureChannel& channel, const image::ResolvedChain& chain) {
  for (size_t i = 0; i < chain.images().size(); ++i) {
    const image::OpenImage& img = *chain.images()[i];
    WPCKPT_TRY_ASSIGN(UniqueFd dirfd, image::open_image_dir(img.dir, chain.owner()));
    std::vector<std::string> names{image::kManifestName, image::kIndexName};
    names.insert(names.end(), img.doc.manifest.files.begin(), img.doc.manifest.files.end());
    for (const std::string& name : names) {
      WPCKPT_TRY_ASSIGN(image::CheckedFile file, image::open_image_file(dirfd.get(), img.dir, name, chain.owner()));
      if (file.identity.size > kMaxMessageBytes)
        return make_error(EFBIG, "page server", (img.dir / name).string() + " is too large to send in one message");
      WPCKPT_TRY_ASSIGN(std::vector<std::byte> bytes, image::read_checked_file(file, img.dir / name, kMaxMessageBytes));
      WPCKPT_TRY(send_named(channel, kFile, std::to_string(i) + "/" + name, bytes));
    }
  }
  return ok();
}

}  // namespace

Result<ServedChain> serve_chain(SecureChannel& channel, const fs::path& root, const nlohmann::json& hello) {
  const auto t0 = std::chrono::steady_clock::now();
  ServedChain served;
  auto image = hello.find("image");
  if (image == hello.end() || !image->is_string()) return make_error(EINVAL, "page server", "a fetch without an image name");
  served.image = image->get<std::string>();
  if (served.image.empty() || served.image.front() == '.' || served.image.find('/') != std::string::npos)
    return make_error(EINVAL, "page server", "image name " + served.image + " refused");
  WPCKPT_TRY_ASSIGN(image::ResolvedChain chain, image::ResolvedChain::open(root / served.image, image::OpenOptions{}));
  WPCKPT_TRY_ASSIGN(std::vector<std::string> paths, relative_paths(chain, root));
  auto pages_only_field = hello.find("pages_only");
  const bool pages_only = pages_only_field != hello.end() && pages_only_field->is_boolean() && pages_only_field->get<bool>();
  if (pages_only) {
    // A second connection of one restore: the chain must be the one it read.
    auto digest = hello.find("manifest_digest");
    if (digest == hello.end() || !digest->is_string() || *digest != chain.newest().manifest_digest.hex())
      return make_error(ESTALE, "page server", served.image + " changed since the restore read it")
          .with_hint("restore again");
  }
  nlohmann::json images = nlohmann::json::array();
  for (size_t i = 0; i < paths.size(); ++i)
    images.push_back({{"path", paths[i]}, {"files", 2 + chain.images()[i]->doc.manifest.files.size()}});
  WPCKPT_TRY(send_json(channel, kReady, {{"images", images}}));
  if (!pages_only) WPCKPT_TRY(send_small_files(channel, chain));

  channel.set_receive_timeout(kIdleTimeoutMs);
  std::vector<std::byte> buf;
  for (;;) {
    Result<Message> m = channel.receive(1 << 10);
    if (!m) break;  // the client went away: a restore that did not finish here
    if (m->type == kDone) {
      served.complete = true;
      break;
    }
    WPCKPT_TRY_ASSIGN(ReadRequest r, decode_read(*m));
    if (r.image >= chain.images().size() || r.length > kMaxMessageBytes)
      return make_error(EINVAL, "page server", "a read of image " + std::to_string(r.image) + ", " +
                                                   std::to_string(r.length) + " bytes, refused");
    WPCKPT_TRY_ASSIGN(image::DataSource data, chain.data_file(r.image));
    buf.resize(r.length);
    WPCKPT_TRY(data.read(*chain.images()[r.image], buf, r.offset));
    WPCKPT_TRY(channel.send(kData, buf));
    served.bytes_sent += r.length;
    ++served.reads;
  }
  served.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return served;
}

}  // namespace wpckpt::net
