// verify_chain: opening the chain checks every manifest, index and parent
// link; then every frame of every image is read, checked and decompressed,
// pages.dat's digest is recomputed, and every extra file is digested.
#include <algorithm>

#include "dump-format/byte_io.hpp"
#include "dump-format/chain_reader.hpp"
#include "dump-format/digest.hpp"
#include "dump-format/file_io.hpp"
#include "dump-format/ordered_workers.hpp"

namespace wpckpt::image {

namespace {

// The frames [first, first + count) read into `compressed`, each checked
// against its checksum only.
Result<void> read_checked_frames(const OpenImage& img, const DataSource& data, uint64_t first, uint64_t count,
                                 std::vector<std::byte>& compressed) {
  const auto& frames = img.index.frames;
  const FrameEntry& last = frames[first + count - 1];
  const uint64_t base = frames[first].offset;
  compressed.resize(last.offset + last.compressed_size - base);
  WPCKPT_TRY(data.read(img, compressed, base));
  for (uint64_t k = first; k < first + count; ++k) {
    if (checksum64(std::span(compressed).subspan(frames[k].offset - base, frames[k].compressed_size)) != frames[k].checksum)
      return format_error(img.data_path, "frame " + std::to_string(k) + ": checksum mismatch");
  }
  return ok();
}

Result<void> verify_data(const OpenImage& img, const DataSource& data, VerifyReport& report, uint64_t& done, uint64_t total,
                         const ProgressFn& progress, bool decompress) {
  unsigned threads = OrderedWorkers::default_threads();
  std::vector<std::unique_ptr<FrameDecompressor>> decompressors;
  for (unsigned i = 0; i < threads; ++i) decompressors.push_back(std::make_unique<FrameDecompressor>());
  // A small image is checked here rather than by waking other threads.
  const bool threaded = img.index.stored_pages > 512;
  OrderedWorkers workers(threaded ? threads : 0, 2 * threads, [&](unsigned w, OrderedWorkers::Slot& s) {
    s.status = decompress ? read_frames(img, data, s.b, s.c, s.in, s.out, *decompressors[w])
                          : read_checked_frames(img, data, s.b, s.c, s.in);
  });
  // Frames are contiguous after the header, so hashing them in order hashes the file.
  StreamDigest digest;
  std::byte header[kDataHeaderSize];
  WPCKPT_TRY(data.read(img, header, 0));
  digest.update(header);
  const uint64_t frames = img.index.frames.size(), per_batch = frames_per_batch(img);
  uint64_t submitted = 0;
  auto drain = [&] {
    while (auto s = workers.next()) workers.recycle(std::move(s));
  };
  for (uint64_t f = 0; f < frames;) {
    while (submitted < frames && (submitted <= f || workers.in_flight() < workers.window())) {
      auto slot = workers.take_slot();
      slot->b = submitted;
      slot->c = std::min(per_batch, frames - submitted);
      submitted += slot->c;
      workers.submit(std::move(slot));
    }
    auto s = workers.next();
    if (!s->status) {
      Error e = std::move(s->status).error();
      drain();
      return e;
    }
    digest.update(s->in);
    f += s->c;
    report.frames_checked += s->c;
    report.bytes_checked += s->in.size();
    done += s->in.size();
    if (progress) progress("verify", done, total);
    workers.recycle(std::move(s));
  }
  const FileRecord& record = img.doc.file_records.at(kDataName);
  if (!(digest.finish() == record.digest))
    return format_error(img.data_path, "digest differs from the manifest's (damaged between frames or replaced)");
  report.bytes_checked += kDataHeaderSize;
  return ok();
}

}  // namespace

Result<VerifyReport> verify_chain(const std::filesystem::path& dir, const ProgressFn& progress, size_t newest,
                                  bool decompress) {
  WPCKPT_TRY_ASSIGN(ResolvedChain chain, ResolvedChain::open(dir, OpenOptions{}));
  VerifyReport report;
  uint64_t total = 0, done = 0;
  const size_t checked = std::min(newest, chain.images().size());
  for (size_t i = 0; i < checked; ++i) total += chain.images()[i]->doc.file_records.at(kDataName).size;
  for (size_t i = 0; i < checked; ++i) {
    const auto& img = chain.images()[i];
    WPCKPT_TRY_ASSIGN(UniqueFd dirfd, open_image_dir(img->dir, chain.owner()));
    for (const std::string& name : img->doc.manifest.files) {
      const std::filesystem::path path = img->dir / name;
      WPCKPT_TRY_ASSIGN(CheckedFile file, open_image_file(dirfd.get(), img->dir, name, chain.owner()));
      WPCKPT_TRY_ASSIGN(Digest128 d, digest_fd(file.fd.get(), path));
      if (!(d == img->doc.file_records.at(name).digest))
        return format_error(path.string(), "digest differs from the manifest's (damaged or replaced)");
      report.bytes_checked += img->doc.file_records.at(name).size;
    }
    // The index and manifest were checked when the chain was opened.
    report.bytes_checked += img->doc.file_records.at(kIndexName).size;
    WPCKPT_TRY_ASSIGN(DataSource data, chain.data_file(i));
    WPCKPT_TRY(verify_data(*img, data, report, done, total, progress, decompress));
    ++report.images;
  }
  return report;
}

}  // namespace wpckpt::image
