#include "dump-format/direct_stream.hpp"

#include <fcntl.h>

#include <cstring>

#include "dump-format/file_io.hpp"

namespace wpckpt::image {

Result<std::unique_ptr<DirectStream>> DirectStream::open(const std::filesystem::path& path, uint64_t offset) {
  if (offset % kAlign != 0) return make_error(EINVAL, "write with O_DIRECT", path.string() + " from an unaligned offset");
  std::unique_ptr<DirectStream> s(new DirectStream());
  s->path_ = path;
  s->offset_ = offset;
  s->fd_.reset(::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW));
  if (!s->fd_) return errno_error("open with O_DIRECT", path.string());
  for (PageBuffer& b : s->buffers_)
    if (!b.reserve(kChunk)) return errno_error("allocate a staging buffer for", path.string());
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

DirectStream::~DirectStream() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DirectStream::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || busy_; });
    if (!busy_) return;  // stopped, nothing left
    const std::span<const std::byte> bytes(buffers_[job_index_].data(), job_bytes_);
    const uint64_t at = job_offset_;
    lock.unlock();
    Result<void> r = write_chunk(bytes, at);
    lock.lock();
    if (!r && status_) status_ = std::move(r);
    busy_ = false;
    cv_.notify_all();
  }
}

// Some file systems open a file with O_DIRECT and then refuse the write
// (EINVAL: an alignment they need, or no direct I/O after all). The chunk
// and every later one then go through the page cache on a descriptor of
// their own: the image is written either way.
Result<void> DirectStream::write_chunk(std::span<const std::byte> bytes, uint64_t at) {
  if (!buffered_fd_) {
    Result<void> r = pwrite_all(fd_.get(), bytes, static_cast<off_t>(at), path_);
    if (r || r.error().err != EINVAL) return r;
    buffered_fd_.reset(::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!buffered_fd_) return errno_error("open again without O_DIRECT", path_.string());
  }
  return pwrite_all(buffered_fd_.get(), bytes, static_cast<off_t>(at), path_);
}

Result<void> DirectStream::wait_idle() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !busy_; });
  return status_;
}

Result<void> DirectStream::submit(size_t index, size_t bytes) {
  WPCKPT_TRY(wait_idle());  // the thread is done with the other buffer
  {
    std::lock_guard lock(mu_);
    job_index_ = index;
    job_bytes_ = bytes;
    job_offset_ = offset_;
    busy_ = true;
  }
  cv_.notify_all();
  offset_ += bytes;
  return ok();
}

Result<void> DirectStream::append(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const size_t n = std::min(bytes.size(), kChunk - fill_);
    std::memcpy(buffers_[current_].data() + fill_, bytes.data(), n);
    fill_ += n;
    bytes = bytes.subspan(n);
    if (fill_ == kChunk) {
      WPCKPT_TRY(submit(current_, kChunk));
      current_ ^= 1;
      fill_ = 0;
    }
  }
  return ok();
}

Result<std::span<const std::byte>> DirectStream::finish() {
  const size_t whole = fill_ / kAlign * kAlign;
  if (whole > 0) WPCKPT_TRY(submit(current_, whole));
  WPCKPT_TRY(wait_idle());
  std::span<const std::byte> tail(buffers_[current_].data() + whole, fill_ - whole);
  fill_ = 0;
  return tail;
}

}  // namespace wpckpt::image
