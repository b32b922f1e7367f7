// ImageChain: reads pages of a resolved chain. Single reads go through a
// one-frame cache; for_each_run plans the runs first (an area at a time in
// address order, or the whole chain frame by frame) and has the frames they
// need decompressed ahead on worker threads, in order.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <tuple>
#include <utility>

#include "dump-format/byte_io.hpp"
#include "dump-format/chain_reader.hpp"
#include "dump-format/file_io.hpp"
#include "dump-format/ordered_workers.hpp"
#include "lib/base/page_buffer.hpp"

namespace wpckpt::image {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kNoFrame = UINT64_MAX;
constexpr uint64_t kInlinePages = 512;

// One step of for_each_run: zero pages, or pages inside one frame.
struct RunItem {
  uint64_t addr = 0, pages = 0;
  uint64_t frame = 0;
  uint64_t batch = 0;       // which Batch holds the frame
  uint32_t image = 0;
  uint16_t first_page = 0;  // page within the frame (kMaxFramePages fits)
  bool stored = false;
};

// Consecutive frames of one image that one worker job decompresses.
struct Batch {
  size_t image = 0;
  uint64_t first = 0, count = 0;
};

struct Plan {
  std::vector<RunItem> items;
  std::vector<Batch> batches;
};

Error not_covered(uint64_t addr, const fs::path& dir) {
  return make_error(EFAULT, "read image", dir.string() + ": address " + hex_u64(addr) + " is not covered by the image")
      .with_hint("`wpckpt show -D DIR` lists the areas the image covers");
}

// The runs of one area in address order: zero(addr, pages) and stored(item),
// stored runs split at frame ends.
template <class Zero, class Stored>
void walk_runs(const ResolvedChain& chain, ChainSweep& sweep, const MemoryArea& area, Zero&& zero, Stored&& stored) {
  for (uint64_t p = area.start; p < area.end;) {
    Span s = sweep.resolve(p, area.end);
    if (s.kind == PageSource::Zero) {
      zero(p, s.pages);
      p += s.pages * kPageSize;
      continue;
    }
    const uint64_t fp = chain.images()[s.image]->index.frame_pages;
    for (uint64_t left = s.pages, dp = s.data_page; left > 0;) {
      uint64_t in = dp % fp, n = std::min(left, fp - in);
      RunItem it{p, n, dp / fp};
      it.image = static_cast<uint32_t>(s.image);
      it.first_page = static_cast<uint16_t>(in);
      it.stored = true;
      stored(it);
      p += n * kPageSize;
      dp += n;
      left -= n;
    }
  }
}

// Zero runs that touch become one: whether a zero run at `addr` extends `last`.
bool extends(const RunItem& last, uint64_t addr) { return !last.stored && last.addr + last.pages * kPageSize == addr; }

// The runs of one area in address order.
void collect_runs(const ResolvedChain& chain, ChainSweep& sweep, const MemoryArea& area, std::vector<RunItem>& items) {
  walk_runs(
      chain, sweep, area,
      [&](uint64_t addr, uint64_t pages) {
        if (!items.empty() && extends(items.back(), addr)) items.back().pages += pages;
        else items.push_back(RunItem{addr, pages});
      },
      [&](const RunItem& it) { items.push_back(it); });
}

// The batches of frames `items` need, in the order the items ask for them:
// a frame joins the last batch when it is in it or follows it in one image.
Plan batch_runs(const ResolvedChain& chain, std::vector<RunItem> items) {
  Plan plan;
  for (RunItem& it : items) {
    if (!it.stored) continue;
    const uint64_t per_batch = frames_per_batch(*chain.images()[it.image]);
    Batch* last = plan.batches.empty() ? nullptr : &plan.batches.back();
    bool inside = last && last->image == it.image && it.frame >= last->first && it.frame < last->first + last->count;
    if (!inside) {
      if (last && last->image == it.image && it.frame == last->first + last->count && last->count < per_batch)
        ++last->count;
      else plan.batches.push_back(Batch{it.image, it.frame, 1});
    }
    it.batch = plan.batches.size() - 1;
  }
  plan.items = std::move(items);
  return plan;
}

// Every run of every area with contents: zero runs in address order, then
// stored runs ordered by (image, frame, page), so no frame is needed twice.
// An image's stored-page stream is in address order and the areas ascend
// (FORMAT.md; both parses check it), so each image's runs in address order
// are already in frame order: they are counted first, then put in place,
// without a growing vector, a partition or a sort. Fresh memory costs a
// fault per page on the reference machine: growing, partitioning and
// sorting 246,000 items took 115 ms of a 4 GiB chain's restore before its
// first page was placed.
Plan plan_frames_once(const ResolvedChain& chain) {
  const auto& areas = chain.newest().doc.manifest.areas;
  const size_t images = chain.images().size();
  std::vector<size_t> at(images + 1, 0);  // first the counts, then where the next item of each kind goes
  {
    ChainSweep sweep(chain);
    RunItem last_zero;  // as the second pass will have made it
    for (const MemoryArea& area : areas) {
      if (!area.contents) continue;
      walk_runs(
          chain, sweep, area,
          [&](uint64_t addr, uint64_t pages) {
            if (at[0] > 0 && extends(last_zero, addr)) {
              last_zero.pages += pages;
            } else {
              ++at[0];
              last_zero = RunItem{addr, pages};
            }
          },
          [&](const RunItem& it) { ++at[1 + it.image]; });
    }
  }
  size_t total = 0;
  for (size_t& n : at) total += std::exchange(n, total);
  std::vector<RunItem> items;
  items.reserve(total);
  populate_pages(items.data(), total * sizeof(RunItem));
  items.resize(total);
  ChainSweep sweep(chain);
  for (const MemoryArea& area : areas) {
    if (!area.contents) continue;
    walk_runs(
        chain, sweep, area,
        [&](uint64_t addr, uint64_t pages) {
          if (at[0] > 0 && extends(items[at[0] - 1], addr)) items[at[0] - 1].pages += pages;
          else items[at[0]++] = RunItem{addr, pages};
        },
        [&](const RunItem& it) { items[at[1 + it.image]++] = it; });
  }
  return batch_runs(chain, std::move(items));
}

// Streams planned runs to a RunFn. The batches of frames a plan needs are
// decompressed ahead on worker threads, in order; stored pages that follow
// each other in memory and in one batch's buffer go to fn as one run (up to a
// batch, 1 MiB).
class RunStreamer {
 public:
  RunStreamer(const ResolvedChain& chain, const ImageChain::RunFn& fn, const ProgressFn& progress, uint64_t total,
              bool threaded)
      : chain_(chain),
        fn_(fn),
        progress_(progress),
        total_(total),
        // Remote page data: each worker waits for the network before it
        // decompresses; more of them keep the connections busy.
        threads_(chain.remote() ? std::max(4u, OrderedWorkers::default_threads()) : OrderedWorkers::default_threads()) {
    for (unsigned i = 0; i < threads_; ++i) decompressors_.push_back(std::make_unique<FrameDecompressor>());
    workers_ = std::make_unique<OrderedWorkers>(threaded ? threads_ : 0, 2 * threads_,
                                                [this](unsigned w, OrderedWorkers::Slot& s) { decompress(w, s); });
  }

  // The runs of one area. On error every job in flight is finished first.
  Result<void> stream(const Plan& plan) {
    plan_ = &plan;
    submitted_ = 0;
    current_ = SIZE_MAX;
    Result<void> r = stream_items();
    if (!r) {
      workers_->recycle(std::move(cur_));
      while (auto rest = workers_->next()) workers_->recycle(std::move(rest));
    }
    workers_->recycle(std::move(cur_));
    return r;
  }

 private:
  void decompress(unsigned worker, OrderedWorkers::Slot& s) {
    Result<DataSource> data = chain_.data_file(s.a);
    if (!data) s.status = std::move(data).error();
    else s.status = read_frames(*chain_.images()[s.a], *data, s.b, s.c, s.in, s.out, *decompressors_[worker]);
  }

  Result<void> stream_items() {
    for (const RunItem& it : plan_->items) {
      if (!it.stored) {
        WPCKPT_TRY(flush());
        WPCKPT_TRY(fn_(it.addr, {}, it.pages));
        count(it.pages);
        continue;
      }
      if (it.batch != current_) WPCKPT_TRY(move_to_batch(it.batch));
      WPCKPT_TRY(add_stored(it));
    }
    return flush();
  }

  // Makes `batch` the current one, keeping the workers up to a window of
  // batches ahead.
  Result<void> move_to_batch(size_t batch) {
    WPCKPT_TRY(flush());
    const std::vector<Batch>& batches = plan_->batches;
    while (submitted_ < batches.size() && (submitted_ <= batch || workers_->in_flight() < workers_->window())) {
      const Batch& b = batches[submitted_++];
      std::unique_ptr<OrderedWorkers::Slot> slot = workers_->take_slot();
      slot->a = b.image;
      slot->b = b.first;
      slot->c = b.count;
      workers_->submit(std::move(slot));
    }
    workers_->recycle(std::move(cur_));
    cur_ = workers_->next();
    current_ = batch;
    if (!cur_->status) return std::move(cur_->status).error();
    return ok();
  }

  Result<void> add_stored(const RunItem& it) {
    const OpenImage& img = *chain_.images()[it.image];
    uint64_t off = (it.frame - plan_->batches[it.batch].first) * img.frame_bytes() + it.first_page * kPageSize;
    if (off + it.pages * kPageSize > cur_->out.size())
      return format_error(img.data_path, "frame " + std::to_string(it.frame) + " holds fewer pages than the index says");
    if (run_pages_ && run_addr_ + run_pages_ * kPageSize == it.addr && run_off_ + run_pages_ * kPageSize == off) {
      run_pages_ += it.pages;
      return ok();
    }
    WPCKPT_TRY(flush());
    run_addr_ = it.addr;
    run_off_ = off;
    run_pages_ = it.pages;
    return ok();
  }

  Result<void> flush() {
    if (run_pages_ == 0) return ok();
    const uint64_t pages = run_pages_;
    run_pages_ = 0;
    Result<void> r = fn_(run_addr_, std::span<const std::byte>(cur_->out).subspan(run_off_, pages * kPageSize), 0);
    count(pages);
    return r;
  }

  void count(uint64_t pages) {
    done_ += pages;
    if (progress_) progress_("read pages", done_, total_);
  }

  const ResolvedChain& chain_;
  const ImageChain::RunFn& fn_;
  const ProgressFn& progress_;
  const uint64_t total_;
  const unsigned threads_;
  std::vector<std::unique_ptr<FrameDecompressor>> decompressors_;
  std::unique_ptr<OrderedWorkers> workers_;
  const Plan* plan_ = nullptr;
  size_t submitted_ = 0, current_ = SIZE_MAX;
  std::unique_ptr<OrderedWorkers::Slot> cur_;
  uint64_t run_addr_ = 0, run_off_ = 0, run_pages_ = 0;
  uint64_t done_ = 0;
};

class Chain final : public ImageChain {
 public:
  explicit Chain(ResolvedChain chain) : chain_(std::move(chain)) {
    for (const auto& img : chain_.images()) dirs_.push_back(img->dir);
  }

  const std::vector<fs::path>& dirs() const override { return dirs_; }
  const Manifest& manifest(size_t image) const override { return chain_.images().at(image)->doc.manifest; }
  uid_t owner() const override { return chain_.owner(); }

  Result<std::vector<std::byte>> read_file(const std::string& name) const override {
    return read_extra_file(chain_, name);
  }

  PageSource source(uint64_t page_addr) const override {
    page_addr -= page_addr % kPageSize;
    const MemoryArea* area = chain_.area_at(page_addr);
    if (!area) return {};
    Span s = chain_.resolve(page_addr, page_addr + kPageSize);
    return PageSource{s.kind, s.kind == PageSource::Stored ? s.image : 0};
  }

  Result<void> read(uint64_t addr, std::span<std::byte> out) const override {
    if (out.size() > UINT64_MAX - addr)
      return make_error(EINVAL, "read image", "range at " + hex_u64(addr) + " wraps around the address space");
    const uint64_t end = addr + out.size();
    uint64_t p = addr;
    std::lock_guard lock(cache_mu_);
    while (p < end) {
      const MemoryArea* area = chain_.area_at(p);
      if (!area) return not_covered(p, dirs_.front());
      uint64_t page = p - p % kPageSize;
      Span s = chain_.resolve(page, area->end);
      uint64_t chunk_end = std::min(end, page + s.pages * kPageSize);
      std::span<std::byte> dst = out.subspan(p - addr, chunk_end - p);
      if (s.kind == PageSource::Zero) {
        std::memset(dst.data(), 0, dst.size());
      } else {
        WPCKPT_TRY(copy_stored(s.image, s.data_page * kPageSize + (p - page), dst));
      }
      p = chunk_end;
    }
    return ok();
  }

  Result<void> for_each_run(const RunFn& fn, const ProgressFn& progress, RunOrder order) const override {
    const ChainSummary sum = summary();
    // A few frames are read faster here than by waking other threads.
    const bool threaded = sum.pages_stored + sum.pages_in_parent > kInlinePages;
    RunStreamer streamer(chain_, fn, progress, sum.pages_covered, threaded);
    if (order == RunOrder::FramesOnce) return streamer.stream(plan_frames_once(chain_));
    ChainSweep sweep(chain_);
    for (const MemoryArea& area : chain_.newest().doc.manifest.areas) {
      if (!area.contents) continue;
      std::vector<RunItem> items;
      collect_runs(chain_, sweep, area, items);
      WPCKPT_TRY(streamer.stream(batch_runs(chain_, std::move(items))));
    }
    return ok();
  }

  ChainSummary summary() const override {
    ChainSummary sum;
    ChainSweep sweep(chain_);
    for (const MemoryArea& area : chain_.newest().doc.manifest.areas) {
      if (!area.contents) continue;
      for (uint64_t p = area.start; p < area.end;) {
        Span s = sweep.resolve(p, area.end);
        sum.pages_covered += s.pages;
        if (s.kind == PageSource::Zero) sum.pages_zero += s.pages;
        else if (s.image == 0) sum.pages_stored += s.pages;
        else sum.pages_in_parent += s.pages;
        p += s.pages * kPageSize;
      }
    }
    return sum;
  }

 private:
  // Bytes of the stored-page stream of image `image` from byte `pos` on.
  Result<void> copy_stored(size_t image, uint64_t pos, std::span<std::byte> dst) const {
    const OpenImage& img = *chain_.images()[image];
    std::optional<DataSource> data;
    while (!dst.empty()) {
      uint64_t frame = pos / img.frame_bytes(), within = pos % img.frame_bytes();
      if (cache_image_ != image || cache_frame_ != frame) {
        cache_frame_ = kNoFrame;
        if (!data) {
          WPCKPT_TRY_ASSIGN(data, chain_.data_file(image));
        }
        WPCKPT_TRY(read_frames(img, *data, frame, 1, cache_compressed_, cache_raw_, cache_decompressor_));
        cache_image_ = image;
        cache_frame_ = frame;
      }
      if (within >= cache_raw_.size()) return format_error(img.data_path, "page beyond the end of its frame");
      size_t n = static_cast<size_t>(std::min<uint64_t>(dst.size(), cache_raw_.size() - within));
      std::memcpy(dst.data(), cache_raw_.data() + within, n);
      dst = dst.subspan(n);
      pos += n;
    }
    return ok();
  }

  ResolvedChain chain_;
  std::vector<fs::path> dirs_;
  mutable std::mutex cache_mu_;
  mutable size_t cache_image_ = 0;
  mutable uint64_t cache_frame_ = kNoFrame;
  mutable std::vector<std::byte> cache_compressed_, cache_raw_;
  mutable FrameDecompressor cache_decompressor_;
};

}  // namespace

Result<std::unique_ptr<ImageChain>> ImageChain::open(const fs::path& dir, const OpenOptions& options) {
  if (options.newest_manifest_only)
    return make_error(EINVAL, "open image chain", dir.string() + " (newest_manifest_only: no page map)");
  WPCKPT_TRY_ASSIGN(ResolvedChain chain, ResolvedChain::open(dir, options));
  return std::unique_ptr<ImageChain>(std::make_unique<Chain>(std::move(chain)));
}

}  // namespace wpckpt::image
