#include "dump-format/background_sync.hpp"

#include <unistd.h>

namespace wpckpt::image {

BackgroundSync::~BackgroundSync() { (void)finish(); }

void BackgroundSync::request(int fd, const std::filesystem::path& path) {
  std::lock_guard lock(mu_);
  if (stop_) return;
  fd_ = fd;
  path_ = path;
  pending_ = true;
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_one();
}

Result<void> BackgroundSync::finish() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  return status_;
}

void BackgroundSync::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return pending_ || stop_; });
    if (!pending_) return;  // stopped with nothing asked: the commit syncs the rest
    pending_ = false;
    int fd = fd_;
    std::filesystem::path path = path_;
    lock.unlock();
    Result<void> r = ::fdatasync(fd) == 0 ? ok() : Result<void>(errno_error("fdatasync", path.string()));
    lock.lock();
    if (!r && status_) status_ = std::move(r);
  }
}

}  // namespace wpckpt::image
