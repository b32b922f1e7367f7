#include "tracker/page_reader.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace wpckpt::tracker {
namespace {
constexpr size_t kMaxIov = 1024;  // IOV_MAX
}

Result<PageReader> PageReader::open(pid_t pid, size_t batch_bytes, bool use_vm_readv) {
  std::string path = "/proc/" + std::to_string(pid) + "/mem";
  UniqueFd mem(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!mem) return errno_error("open", path);
  return PageReader(pid, std::move(mem), std::max<size_t>(batch_bytes, kPageSize), use_vm_readv);
}

PageReader::PageReader(pid_t pid, UniqueFd mem, size_t batch_bytes, bool use_vm_readv)
    : pid_(pid), use_vm_readv_(use_vm_readv), mem_(std::move(mem)), batch_bytes_(batch_bytes / kPageSize * kPageSize) {}

Result<size_t> PageReader::size_buffer(std::span<const PageRun> runs) {
  uint64_t want = 0;
  for (const PageRun& r : runs) {
    want += r.pages * kPageSize;
    if (want >= batch_bytes_) break;
  }
  want = std::min<uint64_t>(want, batch_bytes_);
  if (!buffer_.reserve(static_cast<size_t>(want)))
    return errno_error("allocate copy buffer", std::to_string(want) + " bytes")
        .with_hint("free some memory, or lower the batch size");
  return std::min<size_t>(buffer_.capacity(), batch_bytes_);
}

// Bytes read from /proc/PID/mem at addr (a page multiple, maybe short).
Result<size_t> PageReader::read_fallback(uint64_t addr, std::byte* out, size_t len) {
  size_t done = 0;
  while (done < len) {
    ++stats_.fallback_reads;
    ssize_t n = pread(mem_.get(), out + done, len - done, static_cast<off_t>(addr + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return done / kPageSize * kPageSize;
}

Result<std::span<std::byte>> PageReader::destination(std::span<const PageRun> runs, const RoomFn& room) {
  if (room) {
    std::span<std::byte> r = room(batch_bytes_);
    if (r.size() < kPageSize)
      return make_error(EIO, "read pages", "no room to read into (the image writer failed, or the caller's buffer is full)");
    return r;
  }
  WPCKPT_TRY_ASSIGN(size_t buffer_size, size_buffer(runs));
  return std::span<std::byte>(buffer_.data(), buffer_size);
}

Result<void> PageReader::read(std::span<const PageRun> runs, const DataFn& fn, const HoleFn& hole,
                              const RoomFn& room) {
  if (runs.empty()) return ok();
  size_t run = 0;
  uint64_t offset = 0;  // bytes already done of runs[run]
  iovec local{}, remote[kMaxIov];
  while (run < runs.size()) {
    WPCKPT_TRY_ASSIGN(std::span<std::byte> dest, destination(runs.subspan(run), room));
    const size_t buffer_size = dest.size();
    // Fill one batch: up to kMaxIov remote ranges and buffer_size bytes.
    size_t count = 0, total = 0;
    size_t r = run;
    uint64_t off = offset;
    while (r < runs.size() && count < kMaxIov && total < buffer_size) {
      uint64_t run_bytes = runs[r].pages * kPageSize;
      size_t take = static_cast<size_t>(std::min<uint64_t>(run_bytes - off, buffer_size - total));
      remote[count++] = {reinterpret_cast<void*>(runs[r].addr + off), take};
      total += take;
      off += take;
      if (off == run_bytes) {
        ++r;
        off = 0;
      }
    }
    local = {dest.data(), total};
    ssize_t got = -1;  // without process_vm_readv, every run goes the /proc/PID/mem way below
    if (use_vm_readv_) {
      ++stats_.syscalls;
      got = process_vm_readv(pid_, &local, 1, remote, count, 0);
      if (got < 0 && errno == ESRCH) return errno_error("process_vm_readv", "pid " + std::to_string(pid_));
    }
    size_t good = got < 0 ? 0 : static_cast<size_t>(got) / kPageSize * kPageSize;
    // Hand out what was read, range by range.
    size_t pos = 0;
    for (size_t i = 0; i < count && pos < good; ++i) {
      size_t len = std::min(remote[i].iov_len, good - pos);
      WPCKPT_TRY(fn(reinterpret_cast<uint64_t>(remote[i].iov_base), {dest.data() + pos, len}));
      stats_.pages_read += len / kPageSize;
      pos += len;
    }
    // Advance the cursor past what was read.
    auto advance = [&](uint64_t bytes) {
      while (bytes > 0) {
        uint64_t left = runs[run].pages * kPageSize - offset;
        uint64_t step = std::min(left, bytes);
        offset += step;
        bytes -= step;
        if (offset == runs[run].pages * kPageSize) {
          ++run;
          offset = 0;
        }
      }
    };
    advance(good);
    if (good == total) continue;
    // process_vm_readv stopped at runs[run] + offset: try /proc/PID/mem for
    // the rest of that run (PROT_NONE areas), else call that page a hole.
    // Into a room taken anew: fn consumed the start of this one.
    uint64_t addr = runs[run].addr + offset;
    if (good > 0) {
      WPCKPT_TRY_ASSIGN(dest, destination(runs.subspan(run), room));
    }
    size_t rest = static_cast<size_t>(std::min<uint64_t>(runs[run].pages * kPageSize - offset, dest.size()));
    WPCKPT_TRY_ASSIGN(size_t fallback, read_fallback(addr, dest.data(), rest));
    if (fallback > 0) {
      WPCKPT_TRY(fn(addr, {dest.data(), fallback}));
      stats_.pages_read += fallback / kPageSize;
      advance(fallback);
    } else {
      WPCKPT_TRY(hole(addr, 1));
      ++stats_.pages_unreadable;
      advance(kPageSize);
    }
  }
  return ok();
}

}  // namespace wpckpt::tracker
