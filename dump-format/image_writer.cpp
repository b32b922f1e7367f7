// ImageWriter: pages arrive in address order; zero pages become zero extents,
// the others are packed into fixed-size frames compressed on worker threads
// (or come as frames already compressed, from a merge) and streamed to
// pages.dat in order; the extents of pages.idx are kept in
// memory (a few MiB for the most scattered GiB) and written whole at commit.
// Where the files go is the sink's business (image_sink.hpp).

#include <algorithm>
#include <chrono>
#include <cstring>

#include "dump-format/byte_io.hpp"
#include "dump-format/digest.hpp"
#include "dump-format/frame_codec.hpp"
#include "dump-format/image.hpp"
#include "dump-format/image_sink.hpp"
#include "dump-format/manifest.hpp"
#include "dump-format/ordered_workers.hpp"
#include "dump-format/page_index.hpp"
#include "lib/base/page_buffer.hpp"

namespace wpckpt::image {

namespace fs = std::filesystem;

namespace {

// Pages handed to a worker at once (several frames): 1 MiB.
constexpr uint32_t kBatchPages = 256;
// A delta of up to this many pages whose buffers were not warmed before a
// freeze (warm_up) goes through batches of kReusedBatchPages and a short
// window, so that a few batches are filled again and again: on this guest
// every page of a fresh buffer costs ~15 us the first time the kernel
// (process_vm_readv) and then user mode (the zero check, zstd) touch it, and
// a 661-page delta in 1 MiB batches had a fresh page for each of its pages.
// Past 64 MiB the hand-overs of small batches (~30 us each) would cost more
// than the first touches of the 6 MiB that large ones use before recycling.
constexpr uint64_t kReuseUpToPages = 16384;
constexpr uint32_t kReusedBatchPages = 32;

const std::byte kZeroPage[kPageSize] = {};

bool is_zero_page(const std::byte* p) {
  uint64_t first;
  std::memcpy(&first, p, sizeof first);
  return first == 0 && std::memcmp(p, kZeroPage, kPageSize) == 0;
}

class Writer final : public ImageWriter {
 public:
  Writer(std::unique_ptr<ImageSink> sink, ImageKind kind, const WriterOptions& options)
      : sink_(std::move(sink)), where_(sink_->where()), kind_(kind), options_(options) {
    if (options_.frame_pages == 0) options_.frame_pages = kDefaultFramePages;
    threads_ = options_.threads ? options_.threads : OrderedWorkers::default_threads();
    for (unsigned i = 0; i < threads_; ++i) compressors_.push_back(std::make_unique<FrameCompressor>(options_.compress_level));
    frame_bytes_ = uint64_t{options_.frame_pages} * kPageSize;
    batch_bytes_ = frame_bytes_ * std::max<uint32_t>(1, kBatchPages / options_.frame_pages);
  }

  ~Writer() override {
    workers_.reset();  // joins before the sink (and its files) go away
  }

  Result<void> open_files(const std::optional<ParentLink>& parent) {
    if (parent) {
      parent_rel_ = parent->relative_path;
      parent_digest_ = parent->manifest_digest;
    }
    std::vector<std::byte> header = encode_data_header(options_.frame_pages);
    return append_data(header);
  }

  void set_areas(std::vector<MemoryArea> areas) override { areas_ = std::move(areas); }
  void set_metadata(const std::string& key, nlohmann::json value) override { metadata_[key] = std::move(value); }

  Result<void> add_file(const std::string& name, std::span<const std::byte> contents) override {
    WPCKPT_TRY(usable());
    if (!valid_extra_file_name(name) || records_.count(name))
      return make_error(EINVAL, "add image file", name)
          .with_hint("use a plain, unique name of letters, digits, '.', '-', '_' (not manifest.json, pages.*)");
    if (auto r = sink_->write_file(name, contents); !r) return fail(std::move(r).error());
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
    return ok();
  }

  Result<void> add_compressed_frame(std::span<const FrameRun> runs, std::span<const std::byte> compressed,
                                    uint32_t raw_pages, uint64_t checksum) override {
    WPCKPT_TRY(usable());
    if (stored_pages_ % options_.frame_pages != 0 || raw_pages == 0 || raw_pages > options_.frame_pages ||
        compressed.empty() || compressed.size() > UINT32_MAX)
      return make_error(EINVAL, "add frame", where_ + ": a frame of " + std::to_string(raw_pages) + " pages at stored page " +
                                                 std::to_string(stored_pages_) + " (frames start every " +
                                                 std::to_string(options_.frame_pages) + " pages)");
    // Checked in full before anything changes: a refused frame leaves the writer as it was.
    const uint64_t before = next_addr_;
    uint64_t stored = 0;
    for (const FrameRun& r : runs) {
      if (auto in_order = check_order(r.addr, r.pages, r.pages > 0); !in_order) {
        next_addr_ = before;
        return in_order;
      }
      if (!r.zero) stored += r.pages;
      next_addr_ = r.addr + r.pages * kPageSize;
    }
    if (stored != raw_pages) {
      next_addr_ = before;
      return make_error(EINVAL, "add frame", where_ + ": its runs hold " + std::to_string(stored) + " stored pages, not " +
                                                 std::to_string(raw_pages));
    }
    for (const FrameRun& r : runs) {
      append_extent(r.zero ? ExtentKind::Zero : ExtentKind::Stored, r.addr, r.pages);
      (r.zero ? zero_pages_ : stored_pages_) += r.pages;
    }
    short_frame_ = raw_pages < options_.frame_pages;
    if (!batch_) {
      if (auto r = take_batch(); !r) return fail(std::move(r).error());
    }
    // The batch becomes a plan: its raw pages so far, then this frame.
    plan_raw_frames();
    batch_->frames.push_back(FrameEntry{batch_->in.size(), static_cast<uint32_t>(compressed.size()), raw_pages, checksum});
    batch_->in.insert(batch_->in.end(), compressed.begin(), compressed.end());
    if (batch_->frames.size() * frame_bytes_ >= batch_bytes_) {
      if (auto r = submit_batch(); !r) return fail(std::move(r).error());
    }
    return ok();
  }

  uint64_t stored_pages() const override { return stored_pages_; }

  Result<void> add_zero_pages(uint64_t addr, uint64_t count) override {
    WPCKPT_TRY(usable());
    WPCKPT_TRY(check_order(addr, count, true));
    if (count == 0) return ok();
    append_extent(ExtentKind::Zero, addr, count);
    zero_pages_ += count;
    next_addr_ = addr + count * kPageSize;
    return ok();
  }

  void expect_pages(uint64_t pages) override { expected_pages_ = pages; }

  void warm_up(uint64_t expected_pages) override {
    if (failed_ || committed_ || stored_pages_ > 0) return;
    if (workers_ && !warmed_) return;                          // started by pages already
    if (warmed_ && expected_pages <= expected_pages_) return;  // as warm as asked
    if (expected_pages) expected_pages_ = expected_pages;
    const bool first = !warmed_;
    warmed_ = true;
    if (!workers_) start_workers(true);
    // And one more per other worker: the last batch is split among them.
    // At most a full window in flight, the batch being filled and the
    // parts of the last one: a slot made fresh inside the freeze cost 256
    // first touches there (~300 faults in the copy of a 2,600-page delta).
    const uint64_t batches = (expected_pages * kPageSize + batch_bytes_ - 1) / batch_bytes_ + threads_ - 1;
    const size_t count = static_cast<size_t>(std::clamp<uint64_t>(batches, threads_, workers_->window() + threads_));
    const size_t batch = batch_bytes_wanted(0);
    std::vector<std::unique_ptr<OrderedWorkers::Slot>> slots;
    for (size_t i = 0; i < count; ++i) {
      slots.push_back(workers_->take_slot());
      // Populated and then written once from here: on this paravirtualized
      // guest a populated page still costs ~4 µs at its first store from
      // user mode (1 MiB: 1.0-1.4 ms, then 21 µs). Pages are read into
      // `pages` by the kernel (page_room), whose first write is dear too.
      OrderedWorkers::Slot& s = *slots.back();
      if (s.out.capacity() >= frame_compress_bound(batch) && s.pages.capacity() >= batch) continue;  // warmed before
      reserve_populated(s.out, frame_compress_bound(batch));
      s.out.resize(frame_compress_bound(batch));
      s.out.clear();
      // The worker's entries: grown there, they made its thread's first
      // allocation, and glibc gave it an arena inside the freeze.
      s.frames.reserve(batch / frame_bytes_ + 1);
      if (!s.pages.reserve(batch)) continue;  // best effort: take_batch() reports it
      std::memset(s.pages.data(), 0, batch);
      touch_from_kernel(s.pages.data(), batch);
    }
    for (auto& s : slots) workers_->recycle(std::move(s));
    if (!first) return;
    // The workers are idle: their compressors may be used from here.
    std::vector<std::byte> frame(frame_bytes_), out;
    for (auto& c : compressors_) (void)c->compress(frame, out);
  }

  Result<void> pages_done() override {
    WPCKPT_TRY(usable());
    if (!batch_pending()) return ok();
    if (auto r = submit_last_batch(); !r) return fail(std::move(r).error());
    return ok();
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
    if (committed_) return make_error(EINVAL, "write image", where_ + ": already committed");
    if (failed_) return make_error(EIO, "write image", where_ + ": an earlier step failed; the image is abandoned");
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

  std::span<std::byte> page_room(uint64_t max_pages) override {
    if (!usable()) return {};
    if (!batch_ && !take_batch()) return {};
    uint64_t pages = std::min<uint64_t>((batch_cap_ - fill_) / kPageSize, std::max<uint64_t>(max_pages, 1));
    return {batch_->pages.data() + fill_, static_cast<size_t>(pages * kPageSize)};
  }

  // The batch being filled: the slot's `pages` (made once per slot), fill_
  // bytes of it used. Its `frames` stay empty unless compressed frames come
  // (add_compressed_frame): then they are the plan of the batch, frames to
  // compress from `pages` (compressed_size 0) and frames to copy from `in`.
  // At least `bytes` of room (0: as the pages expected say).
  Result<void> take_batch(size_t bytes = 0) {
    batch_ = workers_ ? workers_->take_slot() : std::make_unique<OrderedWorkers::Slot>();
    fill_ = 0;
    planned_raw_ = 0;
    batch_->frames.clear();
    batch_->in.clear();
    // A slot that has memory keeps it, even if smaller than wanted: a slot
    // warmed before a freeze is not grown inside it (fresh memory is slow).
    const size_t have = batch_->pages.capacity();
    const size_t want = have >= std::max(bytes, frame_bytes_) ? have : batch_bytes_wanted(bytes);
    if (!batch_->pages.reserve(want)) {
      batch_.reset();
      return errno_error("allocate a batch of pages", std::to_string(want) + " bytes");
    }
    batch_cap_ = std::min(batch_bytes_, batch_->pages.capacity() / frame_bytes_ * frame_bytes_);
    return ok();
  }

  // A batch's size: whole frames, at most batch_bytes_, and no more than
  // the pages still expected need (expect_pages): a delta of a few hundred
  // pages populated 4 MiB of batches here, at several µs a page.
  size_t batch_bytes_wanted(size_t at_least) const {
    uint64_t want = batch_bytes_;
    if (expected_pages_ > 0) {
      const uint64_t left = expected_pages_ > stored_pages_ ? (expected_pages_ - stored_pages_) * kPageSize : 0;
      want = std::clamp<uint64_t>((left + frame_bytes_ - 1) / frame_bytes_ * frame_bytes_, frame_bytes_, batch_bytes_);
    }
    if (reuses_batches()) {
      const uint64_t reused =
          std::max<uint64_t>(frame_bytes_, uint64_t{kReusedBatchPages} * kPageSize / frame_bytes_ * frame_bytes_);
      want = std::min(want, reused);
    }
    return static_cast<size_t>(std::max<uint64_t>(want, at_least));
  }

  // Small batches, used again and again (kReuseUpToPages): a delta that
  // was not warmed before a freeze (there, more batches would mean more
  // hand-overs inside it; warm_up made its buffers already).
  bool reuses_batches() const { return !warmed_ && expected_pages_ > 0 && expected_pages_ <= kReuseUpToPages; }

  // Puts pages into the current batch of frames (where page_room() had them
  // read they are already in place), handing full batches to the workers.
  Result<void> store(const std::byte* pages, uint64_t count) {
    if (short_frame_ && count > 0)
      return make_error(EINVAL, "add pages", where_ + ": pages after a short compressed frame (only the last frame is short)");
    while (count > 0) {
      if (!batch_) {
        if (auto r = take_batch(); !r) return fail(std::move(r).error());
      }
      size_t room = (batch_cap_ - fill_) / kPageSize;
      size_t n = static_cast<size_t>(std::min<uint64_t>(room, count));
      std::byte* at = batch_->pages.data() + fill_;
      // Pages of the room lie at or after `at` (zero pages before them were
      // left out): memmove, never memcpy.
      if (pages != at) std::memmove(at, pages, n * kPageSize);
      pages += n * kPageSize;
      count -= n;
      stored_pages_ += n;
      fill_ += n * kPageSize;
      if (fill_ == batch_cap_) WPCKPT_TRY(submit_batch());
    }
    return ok();
  }

  // Workers start with the first full batch: an image smaller than one batch
  // is compressed by the caller, without waking other threads.
  void start_workers(bool threaded) {
    // Reused batches: one being filled and one per worker plus one queued.
    const size_t window = reuses_batches() ? threads_ + 1 : 2 * threads_ + 2;
    workers_ = std::make_unique<OrderedWorkers>(threaded ? threads_ : 0, window,
                                                [this](unsigned w, OrderedWorkers::Slot& s) { compress_batch(w, s); });
  }

  void compress_batch(unsigned worker, OrderedWorkers::Slot& s) {
    s.out.clear();
    reserve_populated(s.out, frame_compress_bound(s.pages_used) + s.in.size());
    const std::span<const std::byte> in(s.pages.data(), s.pages_used);
    if (s.frames.empty()) {
      for (size_t at = 0; at < in.size(); at += frame_bytes_) {
        s.status = compress_frame(worker, in.subspan(at, std::min(frame_bytes_, in.size() - at)), s);
        if (!s.status) return;
      }
      return;
    }
    const std::vector<FrameEntry> plan = std::move(s.frames);
    s.frames.clear();
    size_t raw_at = 0;
    for (const FrameEntry& f : plan) {
      if (f.compressed_size == 0) {
        s.status = compress_frame(worker, in.subspan(raw_at, uint64_t{f.raw_pages} * kPageSize), s);
        if (!s.status) return;
        raw_at += uint64_t{f.raw_pages} * kPageSize;
        continue;
      }
      s.frames.push_back(FrameEntry{s.out.size(), f.compressed_size, f.raw_pages, f.checksum});
      s.out.insert(s.out.end(), s.in.begin() + static_cast<ptrdiff_t>(f.offset),
                   s.in.begin() + static_cast<ptrdiff_t>(f.offset + f.compressed_size));
    }
    s.status = ok();
  }

  Result<void> compress_frame(unsigned worker, std::span<const std::byte> raw, OrderedWorkers::Slot& s) {
    const size_t start = s.out.size();
    WPCKPT_TRY_ASSIGN(size_t n, compressors_[worker]->compress(raw, s.out));
    s.frames.push_back(FrameEntry{start, static_cast<uint32_t>(n), static_cast<uint32_t>(raw.size() / kPageSize),
                                  checksum64(std::span(s.out).subspan(start, n))});
    return ok();
  }

  // A batch with a plan: the raw pages not planned yet become frames to compress.
  void plan_raw_frames() {
    for (; planned_raw_ < fill_; planned_raw_ += frame_bytes_) {
      const uint64_t bytes = std::min<uint64_t>(frame_bytes_, fill_ - planned_raw_);
      batch_->frames.push_back(FrameEntry{0, 0, static_cast<uint32_t>(bytes / kPageSize), 0});
    }
  }

  bool batch_pending() const { return batch_ && (fill_ > 0 || !batch_->frames.empty()); }

  Result<void> submit_batch(bool last = false) {
    if (!workers_) start_workers(!last);
    while (workers_->in_flight() >= workers_->window()) WPCKPT_TRY(write_next_batch());
    batch_->pages_used = fill_;
    if (!batch_->frames.empty()) plan_raw_frames();
    workers_->submit(std::move(batch_));
    while (workers_->next_ready()) WPCKPT_TRY(write_next_batch());
    return ok();
  }

  // The last batch is what a dump waits for after its capture: shared at
  // frame boundaries by every worker instead of one, at the cost of copying
  // all but the first part into slots of their own (with pages_done(), a
  // final 1 GiB dump's stop went from 11.8 to 10.7 ms median here).
  Result<void> submit_last_batch() {
    const size_t frames = (fill_ + frame_bytes_ - 1) / frame_bytes_;
    const bool planned = !batch_->frames.empty();  // holds compressed frames: not split
    const size_t parts = workers_ && threads_ > 1 && !planned ? std::min<size_t>(threads_, frames / 2) : 1;
    if (parts < 2) return submit_batch(true);
    std::unique_ptr<OrderedWorkers::Slot> first = std::move(batch_);
    const size_t total = fill_, per_part = (frames + parts - 1) / parts * frame_bytes_;
    std::vector<std::unique_ptr<OrderedWorkers::Slot>> rest;
    for (size_t at = per_part; at < total; at += per_part) {
      WPCKPT_TRY(take_batch(per_part));
      fill_ = std::min(per_part, total - at);
      std::memcpy(batch_->pages.data(), first->pages.data() + at, fill_);
      batch_->pages_used = fill_;
      rest.push_back(std::move(batch_));
    }
    batch_ = std::move(first);
    fill_ = per_part;
    WPCKPT_TRY(submit_batch(true));
    for (auto& part : rest) {
      batch_ = std::move(part);
      fill_ = batch_->pages_used;
      WPCKPT_TRY(submit_batch(true));
    }
    return ok();
  }

  Result<void> write_next_batch() {
    std::unique_ptr<OrderedWorkers::Slot> s = workers_->next();
    if (!s) return ok();
    if (!s->status) return std::move(s->status).error();
    for (FrameEntry f : s->frames) {
      f.offset += data_size_;
      frames_.push_back(f);
      pages_written_ += f.raw_pages;
    }
    bytes_compressed_ += s->out.size();
    WPCKPT_TRY(append_data(s->out));
    if (options_.progress) {
      // Out of the pages expected (expect_pages), which may be an estimate
      // that falls short: then a total a little ahead of the count. (A total
      // of 0 drew an empty bar for the whole of a full pre-dump.)
      const uint64_t total = std::max(expected_pages_, pages_written_ + pages_written_ / 8);
      options_.progress("write pages", pages_written_, total);
    }
    workers_->recycle(std::move(s));
    return ok();
  }

  Result<void> append_data(std::span<const std::byte> bytes) {
    WPCKPT_TRY(sink_->append(kDataName, bytes));
    data_digest_.update(bytes);
    data_size_ += bytes.size();
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
    const std::string index_path = where_ + "/" + kIndexName;
    // Last partial batch, then every frame still in flight.
    if (batch_pending()) WPCKPT_TRY(submit_last_batch());
    while (workers_ && workers_->in_flight() > 0) WPCKPT_TRY(write_next_batch());
    WPCKPT_TRY(sink_->end_stream(kDataName));
    if (have_extent_) emit_extent();

    // Index: header, extents, tail, then the trailer digest over all of it.
    std::vector<FreshRange> fresh = merged_fresh();
    std::vector<std::byte> index_bytes =
        encode_index_header(options_.frame_pages, extents_written_, fresh.size(), frames_.size(), stored_pages_);
    index_bytes.insert(index_bytes.end(), extent_buf_.begin(), extent_buf_.end());
    std::vector<std::byte>().swap(extent_buf_);
    std::vector<std::byte> tail = encode_index_tail(fresh, frames_);
    index_bytes.insert(index_bytes.end(), tail.begin(), tail.end());
    Digest128 trailer = digest_bytes(index_bytes);
    std::byte t[16];
    put_u64(t, trailer.high);
    put_u64(t + 8, trailer.low);
    index_bytes.insert(index_bytes.end(), t, t + 16);
    // Parse what we are about to write, as a reader would: catches our own bugs.
    WPCKPT_TRY_ASSIGN(PageIndex index, parse_page_index(index_bytes, index_path));
    WPCKPT_TRY(check_areas(index, index_path));
    WPCKPT_TRY(sink_->write_file(kIndexName, index_bytes));
    records_[kIndexName] = FileRecord{index_bytes.size(), digest_bytes(index_bytes)};
    records_[kDataName] = FileRecord{data_size_, data_digest_.finish()};

    ManifestDocument doc;
    Manifest& m = doc.manifest;
    m.format_version = kManifestVersion;
    m.kind = kind_;
    m.created = rfc3339_now();
    m.parent = parent_rel_;
    m.parent_digest = parent_digest_;
    m.areas = std::move(areas_);  // the last use: a failed commit abandons the writer
    m.metadata = std::move(metadata_);
    m.files = extra_names_;
    m.stats = Manifest::Stats{stored_pages_,     zero_pages_,   fresh_pages_without_entry(index),
                              stored_pages_ * kPageSize, bytes_compressed_, frames_.size(),
                              options_.frame_pages, options_.compress_level};
    doc.file_records = records_;
    std::string text = encode_manifest(doc);
    WPCKPT_TRY(sink_->write_file(kManifestName, std::as_bytes(std::span(text))));
    WPCKPT_TRY(sink_->commit());

    CommitInfo info;
    info.dir = where_;
    info.pages_stored = stored_pages_;
    info.pages_zero = zero_pages_;
    info.pages_fresh = m.stats.pages_fresh;
    info.bytes_raw = stored_pages_ * kPageSize;
    info.bytes_compressed = bytes_compressed_;
    info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    return info;
  }

  std::unique_ptr<ImageSink> sink_;
  std::string where_;
  ImageKind kind_;
  WriterOptions options_;
  std::optional<std::string> parent_rel_, parent_digest_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::vector<MemoryArea> areas_;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::map<std::string, FileRecord> records_;
  std::vector<std::string> extra_names_;
  std::vector<FreshRange> fresh_;

  StreamDigest data_digest_;
  uint64_t data_size_ = 0, bytes_compressed_ = 0;
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
  size_t batch_cap_ = 0;  // bytes of the batch being filled: whole frames, at most batch_bytes_
  uint64_t expected_pages_ = 0;  // expect_pages(): 0 = unknown
  bool warmed_ = false;          // warm_up() made the buffers
  size_t fill_ = 0;         // bytes of batch_->pages holding pages
  size_t planned_raw_ = 0;  // of them, bytes in frames of the batch's plan
  uint64_t pages_written_ = 0;
  bool short_frame_ = false;  // a compressed frame of fewer pages came: no stored page may follow
  bool committed_ = false, failed_ = false;
};

}  // namespace

Result<std::unique_ptr<ImageWriter>> ImageWriter::create(std::unique_ptr<ImageSink> sink, ImageKind kind,
                                                          const std::optional<ParentLink>& parent,
                                                          const WriterOptions& options) {
  if (options.frame_pages > kMaxFramePages)
    return make_error(EINVAL, "create image", "frame size " + std::to_string(options.frame_pages) + " pages")
        .with_hint("use at most " + std::to_string(kMaxFramePages) + " pages per frame");
  auto writer = std::make_unique<Writer>(std::move(sink), kind, options);
  WPCKPT_TRY(writer->open_files(parent));
  return std::unique_ptr<ImageWriter>(std::move(writer));
}

Result<std::unique_ptr<ImageWriter>> ImageWriter::create(const fs::path& dir_given, ImageKind kind,
                                                          const std::optional<fs::path>& parent,
                                                          const WriterOptions& options) {
  // "out/" names the directory "out".
  const fs::path dir = dir_given.has_filename() ? dir_given : dir_given.parent_path();
  WPCKPT_TRY_ASSIGN(auto sink, make_local_sink(dir, {}, options.direct_io));
  std::optional<ParentLink> link;
  if (parent) {
    WPCKPT_TRY_ASSIGN(link, link_to_parent(dir, *parent));
  }
  return create(std::move(sink), kind, link, options);
}

}  // namespace wpckpt::image
