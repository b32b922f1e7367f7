// merge_chain: a standalone image (no parent) with the newest image's kind,
// areas, metadata and extra files, and every page as the chain resolves it.
//
// A frame of the chain whose pages come out unchanged, in the same order,
// where a frame of the new image starts is copied as it is, after checking
// it (check_frame). Merging a pre-copy with the short delta written while
// its process was frozen (dump --pre-copy) thus compresses again only the
// frames the delta touched. Every other page is decompressed (a few frames
// cached) and compressed anew by the writer's workers. Once an inserted or
// dropped page shifts the stored-page stream, the frames no longer line up
// (every frame holds the same number of pages) and the rest is compressed
// anew: correct, only slower.
#include <algorithm>

#include "dump-format/byte_io.hpp"
#include "dump-format/chain_reader.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::image {

namespace {

// A run of pages of one source, in address order.
struct Segment {
  uint64_t addr = 0, pages = 0;
  bool stored = false;
  size_t image = 0;
  uint64_t data_page = 0;  // stored: first page's position in the image's stored-page stream
};

// Where the merge is: segment `index`, `offset` pages into it.
struct Position {
  size_t index = 0;
  uint64_t offset = 0;
};

class Merger {
 public:
  Merger(const ResolvedChain& chain, ImageWriter& writer, uint32_t frame_pages, const ProgressFn& progress)
      : chain_(chain), writer_(writer), frame_pages_(frame_pages), progress_(progress) {
    ChainSweep sweep(chain);
    for (const MemoryArea& area : chain.newest().doc.manifest.areas)
      if (area.contents) collect(area, sweep);
  }

  Result<void> run() {
    Position at;
    while (at.index < segments_.size()) {
      const Segment& s = segments_[at.index];
      if (!s.stored) {
        WPCKPT_TRY(writer_.add_zero_pages(s.addr + at.offset * kPageSize, s.pages - at.offset));
        count(s.pages - at.offset);
        at = Position{at.index + 1, 0};
        continue;
      }
      WPCKPT_TRY_ASSIGN(bool copied, copy_frame(at));
      if (!copied) WPCKPT_TRY(compress_again(at));
    }
    return ok();
  }

 private:
  void collect(const MemoryArea& area, ChainSweep& sweep) {
    for (uint64_t p = area.start; p < area.end;) {
      Span s = sweep.resolve(p, area.end);
      const bool stored = s.kind == PageSource::Stored;
      segments_.push_back(Segment{p, s.pages, stored, s.image, s.data_page});
      if (stored) last_stored_ = segments_.size() - 1;
      total_ += s.pages;
      p += s.pages * kPageSize;
    }
  }

  // Copies the frame holding the stored page at `at` if it starts there,
  // the new image is at a frame start too, and the frame's pages follow in
  // order, only zero runs between them. Advances `at` past them if so.
  Result<bool> copy_frame(Position& at) {
    const Segment& s = segments_[at.index];
    const OpenImage& img = *chain_.images()[s.image];
    const uint64_t first = s.data_page + at.offset;
    if (writer_.stored_pages() % frame_pages_ != 0 || img.index.frame_pages != frame_pages_ || first % frame_pages_ != 0 ||
        first / frame_pages_ >= img.index.frames.size())
      return false;
    const uint64_t frame = first / frame_pages_;
    const FrameEntry& entry = img.index.frames[frame];
    runs_.clear();
    uint64_t got = 0;
    Position end = at;
    while (got < entry.raw_pages && end.index < segments_.size()) {
      const Segment& t = segments_[end.index];
      const uint64_t avail = t.pages - end.offset;
      const uint64_t addr = t.addr + end.offset * kPageSize;
      if (!t.stored) {
        runs_.push_back(ImageWriter::FrameRun{addr, avail, true});
        end = Position{end.index + 1, 0};
        continue;
      }
      if (t.image != s.image || t.data_page + end.offset != first + got) return false;
      const uint64_t n = std::min(avail, entry.raw_pages - got);
      runs_.push_back(ImageWriter::FrameRun{addr, n, false});
      got += n;
      end = n < avail ? Position{end.index, end.offset + n} : Position{end.index + 1, 0};
    }
    if (got < entry.raw_pages) return false;
    // A short frame is the last one: no stored page may follow it.
    const bool stored_follow = end.offset > 0 || (last_stored_ != SIZE_MAX && end.index <= last_stored_);
    if (entry.raw_pages < frame_pages_ && stored_follow) return false;
    WPCKPT_TRY_ASSIGN(std::span<const std::byte> bytes, compressed_frame(s.image, frame));
    WPCKPT_TRY(writer_.add_compressed_frame(runs_, bytes, entry.raw_pages, entry.checksum));
    uint64_t pages = 0;
    for (const ImageWriter::FrameRun& r : runs_) pages += r.pages;
    count(pages);
    at = end;
    return true;
  }

  // Pages from `at` up to the end of their frame, of their segment, or of
  // the new image's frame, whichever comes first, decompressed.
  Result<void> compress_again(Position& at) {
    const Segment& s = segments_[at.index];
    const OpenImage& img = *chain_.images()[s.image];
    const uint64_t page = s.data_page + at.offset;
    const uint64_t frame = page / img.index.frame_pages, within = page % img.index.frame_pages;
    WPCKPT_TRY_ASSIGN(std::span<const std::byte> raw, raw_frame(s.image, frame));
    const uint64_t in_frame = raw.size() / kPageSize;
    if (within >= in_frame)
      return format_error(img.data_path, "frame " + std::to_string(frame) + " holds fewer pages than the index says");
    const uint64_t n = std::min({s.pages - at.offset, in_frame - within,
                                 frame_pages_ - writer_.stored_pages() % frame_pages_});
    WPCKPT_TRY(writer_.add_pages(s.addr + at.offset * kPageSize, raw.subspan(within * kPageSize, n * kPageSize)));
    count(n);
    at = at.offset + n < s.pages ? Position{at.index, at.offset + n} : Position{at.index + 1, 0};
    return ok();
  }

  // The compressed bytes of a frame, checked; read ahead about 1 MiB of
  // the image's frames at once.
  Result<std::span<const std::byte>> compressed_frame(size_t image, uint64_t frame) {
    const OpenImage& img = *chain_.images()[image];
    const std::vector<FrameEntry>& frames = img.index.frames;
    if (ahead_image_ != image || frame < ahead_first_ || frame >= ahead_first_ + ahead_count_) {
      ahead_image_ = SIZE_MAX;
      uint64_t count = 1;
      while (frame + count < frames.size() && count < 256 &&
             frames[frame + count].offset + frames[frame + count].compressed_size - frames[frame].offset <= (1u << 20))
        ++count;
      const FrameEntry& last = frames[frame + count - 1];
      ahead_.resize(last.offset + last.compressed_size - frames[frame].offset);
      WPCKPT_TRY_ASSIGN(DataSource data, chain_.data_file(image));
      WPCKPT_TRY(data.read(img, ahead_, frames[frame].offset));
      ahead_image_ = image;
      ahead_first_ = frame;
      ahead_count_ = count;
    }
    const FrameEntry& f = frames[frame];
    std::span<const std::byte> bytes = std::span(ahead_).subspan(f.offset - frames[ahead_first_].offset, f.compressed_size);
    WPCKPT_TRY(check_frame(bytes, f, img.data_path, frame));
    return bytes;
  }

  // A frame decompressed, from a small cache: a frame the delta interrupts
  // is read again after the delta's page.
  Result<std::span<const std::byte>> raw_frame(size_t image, uint64_t frame) {
    for (Cached& c : cache_)
      if (c.image == image && c.frame == frame) return std::span<const std::byte>(c.raw);
    Cached& c = cache_[next_victim_];
    next_victim_ = (next_victim_ + 1) % cache_.size();
    c.image = SIZE_MAX;
    WPCKPT_TRY_ASSIGN(DataSource data, chain_.data_file(image));
    WPCKPT_TRY(read_frames(*chain_.images()[image], data, frame, 1, compressed_, c.raw, decompressor_));
    c.image = image;
    c.frame = frame;
    return std::span<const std::byte>(c.raw);
  }

  void count(uint64_t pages) {
    done_ += pages;
    if (progress_) progress_("read pages", done_, total_);
  }

  struct Cached {
    size_t image = SIZE_MAX;
    uint64_t frame = 0;
    std::vector<std::byte> raw;
  };

  const ResolvedChain& chain_;
  ImageWriter& writer_;
  const uint32_t frame_pages_;
  const ProgressFn& progress_;
  std::vector<Segment> segments_;
  size_t last_stored_ = SIZE_MAX;
  uint64_t total_ = 0, done_ = 0;
  std::vector<ImageWriter::FrameRun> runs_;
  std::vector<std::byte> ahead_;
  size_t ahead_image_ = SIZE_MAX;
  uint64_t ahead_first_ = 0, ahead_count_ = 0;
  std::vector<Cached> cache_ = std::vector<Cached>(8);
  size_t next_victim_ = 0;
  std::vector<std::byte> compressed_;
  FrameDecompressor decompressor_;
};

}  // namespace

Result<CommitInfo> merge_chain(const std::filesystem::path& dir, const std::filesystem::path& out,
                               const WriterOptions& options) {
  WPCKPT_TRY_ASSIGN(ResolvedChain chain, ResolvedChain::open(dir, OpenOptions{}));
  const Manifest& m = chain.newest().doc.manifest;
  WriterOptions writer_options = options;
  writer_options.progress = nullptr;  // progress comes from reading the chain
  if (writer_options.frame_pages == 0) writer_options.frame_pages = kDefaultFramePages;
  WPCKPT_TRY_ASSIGN(std::unique_ptr<ImageWriter> writer, ImageWriter::create(out, m.kind, std::nullopt, writer_options));
  writer->set_areas(m.areas);
  for (auto it = m.metadata.begin(); it != m.metadata.end(); ++it) writer->set_metadata(it.key(), it.value());
  for (const std::string& name : m.files) {
    WPCKPT_TRY_ASSIGN(std::vector<std::byte> contents, read_extra_file(chain, name));
    WPCKPT_TRY(writer->add_file(name, contents));
  }
  WPCKPT_TRY(Merger(chain, *writer, writer_options.frame_pages, options.progress).run());
  return writer->commit();
}

}  // namespace wpckpt::image
