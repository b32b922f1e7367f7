#include "dump-format/chain_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <set>

#include "dump-format/byte_io.hpp"
#include "dump-format/file_io.hpp"
#include "dump-format/frame_codec.hpp"

namespace wpckpt::image {

namespace fs = std::filesystem;

namespace {

// An index larger than this is refused (it would describe ~100 million extents).
constexpr uint64_t kMaxIndexBytes = 4ull << 30;
constexpr size_t kMaxChainLength = 100000;

Error missing_file(const fs::path& dir, const char* name) {
  return make_error(ENOENT, "open image", (dir / name).string())
      .with_hint("not an image directory, or an incomplete one; images appear only when completely written");
}

Result<void> check_size(const fs::path& path, uint64_t actual, uint64_t expected) {
  if (actual != expected)
    return format_error(path.string(), "size " + std::to_string(actual) + " differs from the manifest's " +
                                           std::to_string(expected) + " (truncated or replaced)");
  return ok();
}

// Opens `name` of the image; a missing file gets the "incomplete image" hint.
Result<CheckedFile> open_part(int dirfd, const fs::path& dir, const std::string& name, uid_t owner) {
  Result<CheckedFile> file = open_image_file(dirfd, dir, name, owner);
  if (!file && file.error().err == ENOENT) return missing_file(dir, name.c_str());
  return file;
}

Result<void> read_manifest(int dirfd, OpenImage& img, uid_t owner) {
  WPCKPT_TRY_ASSIGN(CheckedFile file, open_part(dirfd, img.dir, kManifestName, owner));
  const fs::path path = img.dir / kManifestName;
  WPCKPT_TRY_ASSIGN(std::vector<std::byte> bytes, read_checked_file(file, path, kMaxManifestBytes));
  img.manifest_digest = digest_bytes(bytes);
  WPCKPT_TRY_ASSIGN(img.doc, parse_manifest(bytes, path.string()));
  return ok();
}

Result<void> read_index(int dirfd, OpenImage& img, uid_t owner) {
  WPCKPT_TRY_ASSIGN(CheckedFile file, open_part(dirfd, img.dir, kIndexName, owner));
  const fs::path path = img.dir / kIndexName;
  const FileRecord& record = img.doc.file_records.at(kIndexName);
  WPCKPT_TRY(check_size(path, file.identity.size, record.size));
  WPCKPT_TRY_ASSIGN(std::vector<std::byte> bytes, read_checked_file(file, path, kMaxIndexBytes));
  if (!(digest_bytes(bytes) == record.digest))
    return format_error(path.string(), "digest differs from the manifest's (damaged or replaced)");
  WPCKPT_TRY_ASSIGN(img.index, parse_page_index(bytes, path.string()));
  const Manifest::Stats& stats = img.doc.manifest.stats;
  if (img.index.frame_pages != stats.frame_pages || img.index.stored_pages != stats.pages_stored ||
      img.index.frames.size() != stats.frames)
    return format_error((img.dir / kManifestName).string(), "stats disagree with pages.idx");
  return ok();
}

Result<void> check_data_file(int dirfd, OpenImage& img, uid_t owner, bool remote_data) {
  const fs::path path = img.dir / kDataName;
  if (remote_data) {
    // Not here: each frame read is checked against the index's checksum.
    img.data_path = path.string() + " (remote)";
    return check_size(path, img.doc.file_records.at(kDataName).size, img.index.data_file_size());
  }
  WPCKPT_TRY_ASSIGN(CheckedFile file, open_part(dirfd, img.dir, kDataName, owner));
  img.data_path = path.string();
  img.data_identity = file.identity;
  WPCKPT_TRY(check_size(path, file.identity.size, img.doc.file_records.at(kDataName).size));
  WPCKPT_TRY(check_size(path, file.identity.size, img.index.data_file_size()));
  std::byte header[kDataHeaderSize];
  WPCKPT_TRY(pread_exact(file.fd.get(), header, 0, path));
  return check_data_header(header, img.index.frame_pages, img.data_path);
}

// Who must own every file of the chain: the owner of the newest image's
// directory, which must be the current user unless options allow another.
Result<uid_t> chain_owner(const fs::path& dir, const OpenOptions& options) {
  WPCKPT_TRY_ASSIGN(uid_t owner, directory_owner(dir));
  if (!options.allow_other_owner && owner != ::geteuid())
    return make_error(EPERM, "open image", dir.string() + ": owned by uid " + std::to_string(owner) +
                                               ", not by the current user (uid " + std::to_string(::geteuid()) + ")")
        .with_hint("images hold process memory; read them as the user who wrote them");
  return owner;
}

}  // namespace

Result<std::unique_ptr<OpenImage>> open_image(const fs::path& dir, uid_t owner, bool remote_data, bool manifest_only) {
  WPCKPT_TRY_ASSIGN(UniqueFd dirfd, open_image_dir(dir, owner));
  auto img = std::make_unique<OpenImage>();
  img->dir = dir;
  WPCKPT_TRY(read_manifest(dirfd.get(), *img, owner));
  if (manifest_only) return img;
  WPCKPT_TRY(read_index(dirfd.get(), *img, owner));
  WPCKPT_TRY(check_data_file(dirfd.get(), *img, owner, remote_data));
  for (const std::string& name : img->doc.manifest.files) {
    WPCKPT_TRY_ASSIGN(CheckedFile file, open_part(dirfd.get(), dir, name, owner));
    WPCKPT_TRY(check_size(dir / name, file.identity.size, img->doc.file_records.at(name).size));
  }
  return img;
}

Result<DataSource> ResolvedChain::data_file(size_t image) const {
  const OpenImage& img = *images_.at(image);
  if (remote_) return DataSource{nullptr, remote_.get()};
  WPCKPT_TRY_ASSIGN(auto fd, data_files_->get(image, [&] { return reopen_image_file(img.data_path, owner_, img.data_identity); }));
  return DataSource{std::move(fd), nullptr};
}

Result<void> DataSource::read(const OpenImage& img, std::span<std::byte> out, uint64_t offset) const {
  if (remote) return remote->read(img.dir, offset, out);
  return pread_exact(file->get(), out, offset, img.data_path);
}

Result<std::vector<std::byte>> read_extra_file(const ResolvedChain& chain, const std::string& name) {
  const OpenImage& img = chain.newest();
  const auto& files = img.doc.manifest.files;
  if (std::find(files.begin(), files.end(), name) == files.end())
    return make_error(ENOENT, "read image file", (img.dir / name).string() + ": not part of the image");
  const FileRecord& record = img.doc.file_records.at(name);
  WPCKPT_TRY_ASSIGN(UniqueFd dirfd, open_image_dir(img.dir, chain.owner()));
  WPCKPT_TRY_ASSIGN(CheckedFile file, open_image_file(dirfd.get(), img.dir, name, chain.owner()));
  WPCKPT_TRY_ASSIGN(std::vector<std::byte> data, read_checked_file(file, img.dir / name, record.size));
  if (data.size() != record.size || !(digest_bytes(data) == record.digest))
    return format_error((img.dir / name).string(), "size or digest differs from the manifest's (damaged or replaced)");
  return data;
}

Result<ResolvedChain> ResolvedChain::open(const fs::path& dir, const OpenOptions& options) {
  ResolvedChain chain;
  std::set<fs::path> seen;
  fs::path cur = dir;
  std::optional<Digest128> expected;  // what the previous (child) image links to
  Result<uid_t> owner = chain_owner(dir, options);
  if (!owner) {
    Error e = std::move(owner).error();
    if (e.hint.empty()) e.hint = "check the image directory given with -D";
    return e;
  }
  chain.owner_ = *owner;
  chain.remote_ = options.remote_data;
  for (;;) {
    std::error_code ec;
    fs::path canon = fs::canonical(cur, ec);
    if (ec) {
      if (chain.images_.empty())
        return make_error(ec.value(), "open image", cur.string()).with_hint("check the image directory given with -D");
      const OpenImage& child = *chain.images_.back();
      return make_error(ec.value(), "open image",
                        (child.dir / kManifestName).string() + ": parent \"" + *child.doc.manifest.parent + "\" (" +
                            cur.string() + ")")
          .with_hint("the chain is incomplete: put the parent image back, or keep chains together (merge a chain "
                     "before moving single images)");
    }
    if (!seen.insert(canon).second)
      return format_error((chain.images_.back()->dir / kManifestName).string(),
                          "parent \"" + cur.string() + "\" is already part of the chain (a cycle)");
    if (chain.images_.size() >= kMaxChainLength) return format_error(dir.string(), "chain longer than 100000 images");
    WPCKPT_TRY_ASSIGN(std::unique_ptr<OpenImage> img,
                      open_image(cur, chain.owner_, chain.remote_ != nullptr, options.newest_manifest_only));
    if (expected && !(img->manifest_digest == *expected)) {
      const OpenImage& child = *chain.images_.back();
      return format_error((cur / kManifestName).string(),
                          "digest " + img->manifest_digest.hex() + " is not the " + expected->hex() + " that " +
                              (child.dir / kManifestName).string() + " names as its parent's (wrong or modified parent)");
    }
    const Manifest& m = img->doc.manifest;
    std::optional<std::string> parent = m.parent;
    if (parent) {
      Digest128 d;
      Digest128::parse_hex(*m.parent_digest, d);
      expected = d;
      cur = (parent->front() == '/' ? fs::path(*parent) : img->dir / *parent).lexically_normal();
    }
    chain.images_.push_back(std::move(img));
    if (!parent || options.newest_manifest_only) break;
  }
  return chain;
}

const MemoryArea* ResolvedChain::any_area_at(uint64_t addr) const {
  const std::vector<MemoryArea>& areas = newest().doc.manifest.areas;
  auto it = std::upper_bound(areas.begin(), areas.end(), addr, [](uint64_t a, const MemoryArea& m) { return a < m.start; });
  if (it == areas.begin()) return nullptr;
  --it;
  return addr < it->end ? &*it : nullptr;
}

const MemoryArea* ResolvedChain::area_at(uint64_t addr) const {
  const MemoryArea* a = any_area_at(addr);
  return a && a->contents ? a : nullptr;
}

namespace {

// What the chain holds at `addr`, up to `limit`: the newest image with an
// entry there, or with a fresh range (zero) there; `at(i)` is where `addr`
// stands in image i's index.
template <class At>
Span resolve_through(const std::vector<std::unique_ptr<OpenImage>>& images, uint64_t addr, uint64_t limit, At&& at) {
  uint64_t bound = limit;
  for (size_t i = 0; i < images.size(); ++i) {
    const PageIndex& idx = images[i]->index;
    const IndexPosition pos = at(i);
    if (pos.extent < idx.extents.size()) {
      const Extent& e = idx.extents[pos.extent];
      if (e.start <= addr) {
        bound = std::min(bound, e.end());
        Span s;
        s.image = i;
        s.pages = (bound - addr) / kPageSize;
        if (e.kind == ExtentKind::Stored) {
          s.kind = PageSource::Stored;
          s.data_page = e.data_page + (addr - e.start) / kPageSize;
        }
        return s;
      }
      bound = std::min(bound, e.start);  // a newer image's entry further on overrides what older images say there
    }
    if (pos.fresh < idx.fresh.size()) {
      const FreshRange& r = idx.fresh[pos.fresh];
      if (r.start <= addr) return Span{PageSource::Zero, i, 0, (std::min(bound, r.end) - addr) / kPageSize};
      bound = std::min(bound, r.start);
    }
  }
  return Span{PageSource::Zero, images.size(), 0, (bound - addr) / kPageSize};
}

}  // namespace

ChainSweep::ChainSweep(const ResolvedChain& chain) : chain_(chain), positions_(chain.images().size()) {}

Span ChainSweep::resolve(uint64_t addr, uint64_t limit) {
  const auto& images = chain_.images();
  if (addr < last_)  // backwards: every cursor searched again (an image not asked now may be asked next)
    for (size_t i = 0; i < images.size(); ++i) positions_[i] = images[i]->index.position_at(addr);
  last_ = addr;
  return resolve_through(images, addr, limit, [&](size_t i) {
    const PageIndex& idx = images[i]->index;
    IndexPosition& pos = positions_[i];
    while (pos.extent < idx.extents.size() && idx.extents[pos.extent].end() <= addr) ++pos.extent;
    while (pos.fresh < idx.fresh.size() && idx.fresh[pos.fresh].end <= addr) ++pos.fresh;
    return pos;
  });
}

Span ResolvedChain::resolve(uint64_t addr, uint64_t limit) const {
  return resolve_through(images_, addr, limit, [&](size_t i) { return images_[i]->index.position_at(addr); });
}

}  // namespace wpckpt::image

namespace wpckpt::image {

Result<void> read_frames(const OpenImage& img, const DataSource& data, uint64_t first, uint64_t count, std::vector<std::byte>& compressed,
                         std::vector<std::byte>& raw, FrameDecompressor& decompressor) {
  const auto& frames = img.index.frames;
  if (count == 0 || first >= frames.size() || count > frames.size() - first)
    return format_error(img.data_path, "frame " + std::to_string(first) + " does not exist");
  const FrameEntry& last = frames[first + count - 1];
  const uint64_t base = frames[first].offset;
  compressed.resize(last.offset + last.compressed_size - base);
  raw.resize((count - 1) * img.frame_bytes() + uint64_t{last.raw_pages} * kPageSize);
  WPCKPT_TRY(data.read(img, compressed, base));
  for (uint64_t k = 0; k < count; ++k) {
    const FrameEntry& f = frames[first + k];
    WPCKPT_TRY(decompressor.decompress(std::span(compressed).subspan(f.offset - base, f.compressed_size), f,
                                       std::span(raw).subspan(k * img.frame_bytes(), uint64_t{f.raw_pages} * kPageSize),
                                       img.data_path, first + k));
  }
  return ok();
}

}  // namespace wpckpt::image
