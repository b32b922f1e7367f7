// A small pool of worker threads that returns results in submission order,
// with a bounded number of jobs in flight: the writer compresses frames on it
// and the reader decompresses them, so memory stays bounded whatever the size
// of the image and both cores work.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dump-format/page_index.hpp"
#include "lib/base/page_buffer.hpp"
#include "lib/base/result.hpp"

namespace wpckpt::image {

class OrderedWorkers {
 public:
  // One job: the caller fills `in` (and a, b, c), a worker fills `out`,
  // `frames` and `status`. A job covers several frames: handing work to a
  // thread on the other vCPU costs about 30 µs, as much as one 64 KiB frame.
  struct Slot {
    std::vector<std::byte> in, out;
    // The writer's pages (instead of `in`): a huge page, so that its first
    // touches, by the kernel reading pages into it and by user mode, cost
    // one fault instead of one per 4 KiB page.
    PageBuffer pages;
    size_t pages_used = 0;
    std::vector<FrameEntry> frames;
    uint64_t a = 0, b = 0, c = 0;
    Result<void> status;
    bool done = false;
  };
  // Runs on worker `worker` (0..threads-1), so it can use per-worker state.
  using WorkFn = std::function<void(unsigned worker, Slot& slot)>;

  // threads == 0: no threads, submit() does the work itself (small jobs,
  // where waking another vCPU costs more than the work).
  OrderedWorkers(unsigned threads, size_t window, WorkFn fn);
  ~OrderedWorkers();
  OrderedWorkers(const OrderedWorkers&) = delete;
  OrderedWorkers& operator=(const OrderedWorkers&) = delete;

  static unsigned default_threads();
  size_t window() const { return window_; }
  size_t in_flight() const;
  // A slot to fill: recycled buffers when there are any.
  std::unique_ptr<Slot> take_slot();
  void recycle(std::unique_ptr<Slot> slot);
  // Queues a job; the caller keeps in_flight() below window().
  void submit(std::unique_ptr<Slot> slot);
  // The oldest submitted job, waiting for it to finish; null when none.
  std::unique_ptr<Slot> next();
  bool next_ready() const;

 private:
  void run(unsigned worker);

  WorkFn fn_;
  size_t window_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Slot*> queue_;                    // submitted, not yet picked up
  std::deque<std::unique_ptr<Slot>> order_;   // every submitted slot, oldest first
  std::vector<std::unique_ptr<Slot>> free_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace wpckpt::image
