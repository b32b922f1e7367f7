// ImageWriter: pages arrive in address order; zero pages become zero extents,
// the others are packed into fixed-size frames compressed on worker threads
// and appended to pages.dat in order. Extents stream to pages.idx. Everything
// is written inside a temporary sibling directory that commit() renames.
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "dump-format/byte_io.hpp"
#include "dump-format/chain_reader.hpp"
#include "dump-format/digest.hpp"
#include "dump-format/file_io.hpp"
#include "dump-format/frame_codec.hpp"
#include "dump-format/image.hpp"
#include "dump-format/manifest.hpp"
#include "dump-format/ordered_workers.hpp"
#include "dump-format/page_index.hpp"
#include "dump-format/temp_dirs.hpp"
#include "lib/base/page_buffer.hpp"

namespace wpckpt::image {

namespace fs = std::filesystem;

namespace {

// Start writeback every so often so that commit()'s fsync has little left.
constexpr uint64_t kWritebackEvery = 64ull << 20;
constexpr size_t kExtentBufferBytes = 64 * 1024;
// Pages handed to a worker at once (several frames): 1 MiB.
constexpr uint32_t kBatchPages = 256;

const std::byte kZeroPage[kPageSize] = {};

bool is_zero_page(const std::byte* p) {
  uint64_t first;
  std::memcpy(&first, p, sizeof first);
  return first == 0 && std::memcmp(p, kZeroPage, kPageSize) == 0;
}

class Writer final : public ImageWriter {
 public:
  Writer(fs::path dir, fs::path tmp, UniqueFd tmp_lock, TargetState target, ImageKind kind, const WriterOptions& options)
      : dir_(std::move(dir)),
        tmp_(std::move(tmp)),
        tmp_lock_(std::move(tmp_lock)),
        target_(target),
        kind_(kind),
        options_(options) {
    if (options_.frame_pages == 0) options_.frame_pages = kDefaultFramePages;
    threads_ = options_.threads ? options_.threads : OrderedWorkers::default_threads();
    for (unsigned i = 0; i < threads_; ++i) compressors_.push_back(std::make_unique<FrameCompressor>(options_.compress_level));
    frame_bytes_ = uint64_t{options_.frame_pages} * kPageSize;
    batch_bytes_ = frame_bytes_ * std::max<uint32_t>(1, kBatchPages / options_.frame_pages);
  }

  ~Writer() override {
    workers_.reset();  // joins before the directory goes away
    if (!committed_) remove_tree(tmp_);
    // tmp_lock_ is released last: until then no cleaner touches tmp_.
  }

  Result<void> open_files(std::optional<std::string> parent_rel, std::optional<std::string> parent_digest) {
    parent_rel_ = std::move(parent_rel);
    parent_digest_ = std::move(parent_digest);
    WPCKPT_TRY_ASSIGN(data_fd_, create_private_file(tmp_ / kDataName));
    WPCKPT_TRY_ASSIGN(index_fd_, create_private_file(tmp_ / kIndexName));
    std::vector<std::byte> header = encode_data_header(options_.frame_pages);
    WPCKPT_TRY(append_data(header));
    // The index header is rewritten with the real counts at commit.
    WPCKPT_TRY(write_all(index_fd_.get(), encode_index_header(options_.frame_pages, 0, 0, 0, 0), tmp_ / kIndexName));
    return ok();
  }

  void set_areas(std::vector<MemoryArea> areas) override { areas_ = std::move(areas); }
  void set_metadata(const std::string& key, nlohmann::json value) override { metadata_[key] = std::move(value); }

  Result<void> add_file(const std::string& name, std::span<const std::byte> contents) override {
    WPCKPT_TRY(usable());
    if (!valid_extra_file_name(name) || records_.count(name))
      return make_error(EINVAL, "add image file", name)
          .with_hint("use a plain, unique name of letters, digits, '.', '-', '_' (not manifest.json, pages.*)");
    if (auto r = write_private_file(tmp_ / name, contents); !r) return fail(std::move(r).error());
    records_[name] = FileRecord{contents.size(), digest_bytes(contents)};
    extra_names_.push_back(name);
    return ok();
  }

  Result<void> add_fresh_range(uint64_t start, uint64_t end) override {
    WPCKPT_TRY(usable());
    if (start % kPageSize || end % kPageSize || start >= end)
      return make_error(EINVAL, "add fresh range", "[" + hex_u64(start) + ", " + hex_u64(end) + ") is empty or not page aligned");
    fresh_.push_back({start, end});
    return ok();
  }

  Result<void> add_pages(uint64_t addr, std::span<const std::byte> data) override {
    WPCKPT_TRY(usable());
    uint64_t count = data.size() / kPageSize;
    WPCKPT_TRY(check_order(addr, count, data.size() % kPageSize == 0));
    const std::byte* p = data.data();
    uint64_t i = 0;
    while (i < count) {
      // One run of pages of the same kind at a time.
      bool zero = is_zero_page(p + i * kPageSize);
      uint64_t j = i + 1;
      while (j < count && is_zero_page(p + j * kPageSize) == zero) ++j;
      uint64_t run_addr = addr + i * kPageSize;
      if (zero) {
        append_extent(ExtentKind::Zero, run_addr, j - i);
        zero_pages_ += j - i;
      } else {
        append_extent(ExtentKind::Stored, run_addr, j - i);
        if (auto r = store(p + i * kPageSize, j - i); !r) return fail(std::move(r).error());
      }
      i = j;
    }
    next_addr_ = addr + count * kPageSize;
    return flush_extents_if_full();
  }

  Result<void> add_zero_pages(uint64_t addr, uint64_t count) override {
    WPCKPT_TRY(usable());
    WPCKPT_TRY(check_order(addr, count, true));
    if (count == 0) return ok();
    append_extent(ExtentKind::Zero, addr, count);
    zero_pages_ += count;
    next_addr_ = addr + count * kPageSize;
    return flush_extents_if_full();
  }

  Result<CommitInfo> commit() override {
    WPCKPT_TRY(usable());
    auto r = finish();
    if (!r) return fail(std::move(r).error());
    committed_ = true;
    return std::move(r).value();
  }

 private:
  Result<void> usable() const {
    if (committed_) return make_error(EINVAL, "write image", dir_.string() + ": already committed");
    if (failed_) return make_error(EIO, "write image", dir_.string() + ": an earlier step failed; the image is abandoned");
    return ok();
  }
  Error fail(Error e) {
    failed_ = true;
    return e;
  }

  Result<void> check_order(uint64_t addr, uint64_t count, bool whole_pages) {
    if (!whole_pages || addr % kPageSize != 0 || count > (UINT64_MAX - addr) / kPageSize)
      return make_error(EINVAL, "add pages", hex_u64(addr) + ": not page aligned, not whole pages, or past the address space");
    if (addr < next_addr_)
      return make_error(EINVAL, "add pages", hex_u64(addr) + " is below the previous page (" + hex_u64(next_addr_) + ")")
          .with_hint("pages must be added in strictly ascending address order");
    return ok();
  }

  void append_extent(ExtentKind kind, uint64_t addr, uint64_t pages) {
    if (have_extent_ && cur_.kind == kind && cur_.end() == addr) {
      cur_.pages += pages;
      return;
    }
    if (have_extent_) emit_extent();
    cur_ = Extent{addr, pages, kind == ExtentKind::Stored ? stored_pages_ : 0, kind};
    have_extent_ = true;
  }

  void emit_extent() {
    size_t at = extent_buf_.size();
    extent_buf_.resize(at + kExtentSize);
    encode_extent(cur_, extent_buf_.data() + at);
    ++extents_written_;
    have_extent_ = false;
  }

  Result<void> flush_extents_if_full(bool force = false) {
    if (extent_buf_.empty() || (!force && extent_buf_.size() < kExtentBufferBytes)) return ok();
    auto r = write_all(index_fd_.get(), extent_buf_, tmp_ / kIndexName);
    extent_buf_.clear();
    if (!r) return fail(std::move(r).error());
    return ok();
  }

  // Copies pages into the current batch of frames, handing full batches to the workers.
  Result<void> store(const std::byte* pages, uint64_t count) {
    while (count > 0) {
      if (!batch_) {
        batch_ = workers_ ? workers_->take_slot() : std::make_unique<OrderedWorkers::Slot>();
        batch_->in.clear();
        reserve_populated(batch_->in, batch_bytes_);  // a fresh slot: no fault per page
      }
      size_t room = (batch_bytes_ - batch_->in.size()) / kPageSize;
      size_t n = static_cast<size_t>(std::min<uint64_t>(room, count));
      batch_->in.insert(batch_->in.end(), pages, pages + n * kPageSize);
      pages += n * kPageSize;
      count -= n;
      stored_pages_ += n;
      if (batch_->in.size() == batch_bytes_) WPCKPT_TRY(submit_batch());
    }
    return ok();
  }

  // Workers start with the first full batch: an image smaller than one batch
  // is compressed by the caller, without waking other threads.
  void start_workers(bool threaded) {
    workers_ = std::make_unique<OrderedWorkers>(threaded ? threads_ : 0, 2 * threads_ + 2,
                                                [this](unsigned w, OrderedWorkers::Slot& s) { compress_batch(w, s); });
  }

  void compress_batch(unsigned worker, OrderedWorkers::Slot& s) {
    s.out.clear();
    reserve_populated(s.out, frame_compress_bound(s.in.size()));
    s.frames.clear();
    for (size_t at = 0; at < s.in.size(); at += frame_bytes_) {
      auto raw = std::span<const std::byte>(s.in).subspan(at, std::min(frame_bytes_, s.in.size() - at));
      size_t start = s.out.size();
      auto n = compressors_[worker]->compress(raw, s.out);
      if (!n) {
        s.status = std::move(n).error();
        return;
      }
      s.frames.push_back(FrameEntry{start, static_cast<uint32_t>(*n), static_cast<uint32_t>(raw.size() / kPageSize),
                                    checksum64(std::span(s.out).subspan(start, *n))});
    }
    s.status = ok();
  }

  Result<void> submit_batch(bool last = false) {
    if (!workers_) start_workers(!last);
    while (workers_->in_flight() >= workers_->window()) WPCKPT_TRY(write_next_batch());
    workers_->submit(std::move(batch_));
    while (workers_->next_ready()) WPCKPT_TRY(write_next_batch());
    return ok();
  }

  Result<void> write_next_batch() {
    std::unique_ptr<OrderedWorkers::Slot> s = workers_->next();
    if (!s) return ok();
    if (!s->status) return std::move(s->status).error();
    for (FrameEntry f : s->frames) {
      f.offset += data_size_;
      frames_.push_back(f);
    }
    bytes_compressed_ += s->out.size();
    WPCKPT_TRY(append_data(s->out));
    if (options_.progress) options_.progress("write pages", (bytes_raw_done_ += s->in.size()) / kPageSize, 0);
    workers_->recycle(std::move(s));
    return ok();
  }

  Result<void> append_data(std::span<const std::byte> bytes) {
    WPCKPT_TRY(write_all(data_fd_.get(), bytes, tmp_ / kDataName));
    data_digest_.update(bytes);
    data_size_ += bytes.size();
    if (data_size_ - synced_ >= kWritebackEvery) {
      ::sync_file_range(data_fd_.get(), static_cast<off_t>(synced_), static_cast<off_t>(data_size_ - synced_),
                        SYNC_FILE_RANGE_WRITE);
      synced_ = data_size_;
    }
    return ok();
  }

  Result<void> check_areas(const PageIndex& index, const std::string& file) {
    std::sort(areas_.begin(), areas_.end(), [](const MemoryArea& a, const MemoryArea& b) { return a.start < b.start; });
    for (size_t i = 0; i < areas_.size(); ++i) {
      const MemoryArea& a = areas_[i];
      if (a.start % kPageSize || a.end % kPageSize || a.start >= a.end || (i > 0 && a.start < areas_[i - 1].end))
        return make_error(EINVAL, "write image", "area [" + hex_u64(a.start) + ", " + hex_u64(a.end) +
                                                     ") is empty, unaligned or overlaps another")
            .with_hint("set_areas() takes disjoint page-aligned areas");
    }
    // Every page entry lies inside an area that has contents.
    size_t ai = 0;
    for (const Extent& e : index.extents) {
      while (ai < areas_.size() && areas_[ai].end <= e.start) ++ai;
      uint64_t at = e.start;
      for (size_t k = ai; at < e.end(); ++k) {
        if (k >= areas_.size() || areas_[k].start > at || !areas_[k].contents)
          return make_error(EINVAL, "write image", file + ": pages at " + hex_u64(at) + " lie outside every area with contents")
              .with_hint("add pages only inside the areas given to set_areas()");
        at = std::min(e.end(), areas_[k].end);
      }
    }
    return ok();
  }

  static uint64_t fresh_pages_without_entry(const PageIndex& index) {
    uint64_t total = 0;
    size_t ei = 0;
    for (const FreshRange& r : index.fresh) {
      uint64_t covered = 0;
      while (ei < index.extents.size() && index.extents[ei].end() <= r.start) ++ei;
      for (size_t k = ei; k < index.extents.size() && index.extents[k].start < r.end; ++k)
        covered += std::min(r.end, index.extents[k].end()) - std::max(r.start, index.extents[k].start);
      total += (r.end - r.start - covered) / kPageSize;
    }
    return total;
  }

  std::vector<FreshRange> merged_fresh() {
    std::sort(fresh_.begin(), fresh_.end(), [](const FreshRange& a, const FreshRange& b) { return a.start < b.start; });
    std::vector<FreshRange> out;
    for (const FreshRange& r : fresh_) {
      if (!out.empty() && r.start <= out.back().end) out.back().end = std::max(out.back().end, r.end);
      else out.push_back(r);
    }
    return out;
  }

  Result<CommitInfo> finish() {
    const fs::path index_path = tmp_ / kIndexName, data_path = tmp_ / kDataName;
    // Last partial frame, then every frame still in flight.
    if (batch_ && !batch_->in.empty()) WPCKPT_TRY(submit_batch(true));
    while (workers_ && workers_->in_flight() > 0) WPCKPT_TRY(write_next_batch());
    if (have_extent_) emit_extent();
    WPCKPT_TRY(flush_extents_if_full(true));

    // Index: tail, real header, then the trailer digest over all of it.
    std::vector<FreshRange> fresh = merged_fresh();
    WPCKPT_TRY(write_all(index_fd_.get(), encode_index_tail(fresh, frames_), index_path));
    WPCKPT_TRY(pwrite_all(index_fd_.get(),
                          encode_index_header(options_.frame_pages, extents_written_, fresh.size(), frames_.size(), stored_pages_),
                          0, index_path));
    WPCKPT_TRY_ASSIGN(std::vector<std::byte> index_bytes, read_small_file(index_path, UINT64_MAX));
    Digest128 trailer = digest_bytes(index_bytes);
    std::byte t[16];
    put_u64(t, trailer.high);
    put_u64(t + 8, trailer.low);
    WPCKPT_TRY(write_all(index_fd_.get(), t, index_path));
    index_bytes.insert(index_bytes.end(), t, t + 16);
    // Read back what we wrote, as a reader would: catches our own bugs.
    WPCKPT_TRY_ASSIGN(PageIndex index, parse_page_index(index_bytes, index_path.string()));
    WPCKPT_TRY(check_areas(index, index_path.string()));
    WPCKPT_TRY(fsync_fd(index_fd_.get(), index_path));
    WPCKPT_TRY(fsync_fd(data_fd_.get(), data_path));
    records_[kIndexName] = FileRecord{index_bytes.size(), digest_bytes(index_bytes)};
    records_[kDataName] = FileRecord{data_size_, data_digest_.finish()};

    ManifestDocument doc;
    Manifest& m = doc.manifest;
    m.format_version = kManifestVersion;
    m.kind = kind_;
    m.created = rfc3339_now();
    m.parent = parent_rel_;
    m.parent_digest = parent_digest_;
    m.areas = areas_;
    m.metadata = metadata_;
    m.files = extra_names_;
    m.stats = Manifest::Stats{stored_pages_,     zero_pages_,   fresh_pages_without_entry(index),
                              stored_pages_ * kPageSize, bytes_compressed_, frames_.size(),
                              options_.frame_pages, options_.compress_level};
    doc.file_records = records_;
    std::string text = encode_manifest(doc);
    WPCKPT_TRY(write_private_file(tmp_ / kManifestName, std::as_bytes(std::span(text))));
    WPCKPT_TRY(commit_directory(tmp_, dir_, target_));

    CommitInfo info;
    info.dir = dir_;
    info.pages_stored = stored_pages_;
    info.pages_zero = zero_pages_;
    info.pages_fresh = m.stats.pages_fresh;
    info.bytes_raw = stored_pages_ * kPageSize;
    info.bytes_compressed = bytes_compressed_;
    info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    return info;
  }

  fs::path dir_, tmp_;
  UniqueFd tmp_lock_;  // flock held on tmp_ while this writer lives (temp_dirs.hpp)
  TargetState target_;
  ImageKind kind_;
  WriterOptions options_;
  std::optional<std::string> parent_rel_, parent_digest_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::vector<MemoryArea> areas_;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::map<std::string, FileRecord> records_;
  std::vector<std::string> extra_names_;
  std::vector<FreshRange> fresh_;

  UniqueFd data_fd_, index_fd_;
  StreamDigest data_digest_;
  uint64_t data_size_ = 0, synced_ = 0, bytes_compressed_ = 0;
  std::vector<FrameEntry> frames_;

  Extent cur_;
  bool have_extent_ = false;
  std::vector<std::byte> extent_buf_;
  uint64_t extents_written_ = 0;
  uint64_t next_addr_ = 0, stored_pages_ = 0, zero_pages_ = 0;

  std::vector<std::unique_ptr<FrameCompressor>> compressors_;
  std::unique_ptr<OrderedWorkers> workers_;
  std::unique_ptr<OrderedWorkers::Slot> batch_;
  unsigned threads_ = 1;
  size_t frame_bytes_ = 0, batch_bytes_ = 0;
  uint64_t bytes_raw_done_ = 0;
  bool committed_ = false, failed_ = false;
};

}  // namespace

Result<std::unique_ptr<ImageWriter>> ImageWriter::create(const fs::path& dir_given, ImageKind kind,
                                                          const std::optional<fs::path>& parent,
                                                          const WriterOptions& options) {
  // "out/" names the directory "out".
  const fs::path dir = dir_given.has_filename() ? dir_given : dir_given.parent_path();
  if (options.frame_pages > kMaxFramePages)
    return make_error(EINVAL, "create image", "frame size " + std::to_string(options.frame_pages) + " pages")
        .with_hint("use at most " + std::to_string(kMaxFramePages) + " pages per frame");
  WPCKPT_TRY_ASSIGN(TargetState target, check_image_target(dir));
  std::optional<std::string> parent_rel, parent_digest;
  if (parent) {
    // The parent must be a readable chain; we link to the digest of the
    // manifest that was checked (not one read again later).
    WPCKPT_TRY_ASSIGN(ResolvedChain chain, ResolvedChain::open(*parent, OpenOptions{}));
    const Digest128 digest = chain.newest().manifest_digest;
    std::error_code ec;
    fs::path canon_parent = fs::weakly_canonical(*parent, ec);
    fs::path canon_dir = fs::weakly_canonical(fs::absolute(dir, ec), ec);
    if (ec) return make_error(ec.value(), "resolve path", dir.string());
    parent_rel = canon_parent.lexically_relative(canon_dir).string();
    parent_digest = digest.hex();
  }
  remove_abandoned_temps(dir);
  fs::path tmp;
  UniqueFd tmp_lock;
  for (int attempt = 0;; ++attempt) {
    WPCKPT_TRY_ASSIGN(tmp, make_temp_sibling(dir));
    Result<UniqueFd> lock = lock_temp_dir(tmp);
    if (lock) {
      tmp_lock = std::move(lock).value();
      break;
    }
    // ENOENT: a cleaner took it for abandoned before we locked it.
    if (lock.error().err != ENOENT || attempt == 2) return std::move(lock).error();
  }
  auto writer = std::make_unique<Writer>(dir, tmp, std::move(tmp_lock), target, kind, options);
  WPCKPT_TRY(writer->open_files(parent_rel, parent_digest));
  return std::unique_ptr<ImageWriter>(std::move(writer));
}

}  // namespace wpckpt::image
