#include "dump-format/ordered_workers.hpp"

#include <algorithm>
#include <cstdlib>

namespace wpckpt::image {

unsigned OrderedWorkers::default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

OrderedWorkers::OrderedWorkers(unsigned threads, size_t window, WorkFn fn)
    : fn_(std::move(fn)), window_(std::max<size_t>(window, 1)) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this, i] { run(i); });
}

OrderedWorkers::~OrderedWorkers() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

size_t OrderedWorkers::in_flight() const {
  std::lock_guard lock(mu_);
  return order_.size();
}

std::unique_ptr<OrderedWorkers::Slot> OrderedWorkers::take_slot() {
  std::lock_guard lock(mu_);
  if (free_.empty()) return std::make_unique<Slot>();
  std::unique_ptr<Slot> s = std::move(free_.back());
  free_.pop_back();
  return s;
}

void OrderedWorkers::recycle(std::unique_ptr<Slot> slot) {
  if (!slot) return;
  slot->done = false;
  slot->status = ok();
  std::lock_guard lock(mu_);
  if (free_.size() < window_ + threads_.size()) free_.push_back(std::move(slot));
}

void OrderedWorkers::submit(std::unique_ptr<Slot> slot) {
  slot->done = false;
  if (threads_.empty()) {
    fn_(0, *slot);
    slot->done = true;
    std::lock_guard lock(mu_);
    order_.push_back(std::move(slot));
    return;
  }
  {
    std::lock_guard lock(mu_);
    queue_.push_back(slot.get());
    order_.push_back(std::move(slot));
  }
  work_cv_.notify_one();
}

std::unique_ptr<OrderedWorkers::Slot> OrderedWorkers::next() {
  std::unique_lock lock(mu_);
  if (order_.empty()) return nullptr;
  done_cv_.wait(lock, [&] { return order_.front()->done; });
  std::unique_ptr<Slot> s = std::move(order_.front());
  order_.pop_front();
  return s;
}

bool OrderedWorkers::next_ready() const {
  std::lock_guard lock(mu_);
  return !order_.empty() && order_.front()->done;
}

void OrderedWorkers::run(unsigned worker) {
  // A thread's first allocation makes glibc map it an arena (a 64 MiB
  // reservation and its first pages, ~1-2 ms here): made now, when the
  // workers start (before a freeze, ImageWriter::warm_up), not at the
  // first batch's allocation, which may be inside one.
  void* volatile first = ::malloc(1);  // volatile: the pair is not optimized away
  ::free(first);
  for (;;) {
    Slot* slot;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      slot = queue_.front();
      queue_.pop_front();
    }
    fn_(worker, *slot);
    {
      std::lock_guard lock(mu_);
      slot->done = true;
    }
    done_cv_.notify_all();
  }
}

}  // namespace wpckpt::image
