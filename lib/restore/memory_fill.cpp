#include "lib/restore/memory_fill.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "lib/base/page_buffer.hpp"

namespace wpckpt::restore {

bool starts_zeroed(const state::Mapping& m) { return tracker::restored_zeroed(m.kind); }

namespace {

Result<void> write_all(int mem_fd, uint64_t addr, const std::byte* data, size_t len) {
  while (len > 0) {
    ssize_t n = pwrite(mem_fd, data, std::min<size_t>(len, size_t{1} << 30), static_cast<off_t>(addr));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      char buf[64];
      snprintf(buf, sizeof buf, "at 0x%llx (%zu bytes)", static_cast<unsigned long long>(addr), len);
      return errno_error("write restored memory", buf);
    }
    addr += static_cast<uint64_t>(n);
    data += n;
    len -= static_cast<size_t>(n);
  }
  return ok();
}

}  // namespace

Result<FillStats> fill_memory(const image::ImageChain& chain, int mem_fd, UffdFill* uffd,
                              const std::vector<state::Mapping>& mappings, const ProgressFn& progress) {
  FillStats stats;
  auto t0 = std::chrono::steady_clock::now();
  static const std::vector<std::byte> zeros(1 << 20);
  size_t cursor = 0;  // mappings before it end at or before the current run

  auto through_mem = [&](uint64_t addr, std::span<const std::byte> data) {
    return write_all(mem_fd, addr, data.data(), data.size());
  };
  auto fn = [&](uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages) -> Result<void> {
    if (!data.empty()) {
      WPCKPT_TRY(uffd ? uffd->place(addr, data, through_mem) : through_mem(addr, data));
      stats.pages_stored += data.size() / image::kPageSize;
      stats.bytes_written += data.size();
      return ok();
    }
    stats.pages_zero += zero_pages;
    uint64_t end = addr + zero_pages * image::kPageSize;
    while (cursor < mappings.size() && mappings[cursor].end <= addr) ++cursor;
    for (size_t i = cursor; i < mappings.size() && mappings[i].start < end; ++i) {
      const auto& m = mappings[i];
      if (starts_zeroed(m)) continue;
      uint64_t a = std::max(addr, m.start), b = std::min(end, m.end);
      while (a < b) {
        size_t len = std::min<uint64_t>(b - a, zeros.size());
        WPCKPT_TRY(write_all(mem_fd, a, zeros.data(), len));
        stats.bytes_written += len;
        a += len;
      }
    }
    return ok();
  };
  // Each frame of the chain read once: the order of the writes into the new
  // process does not matter, each page has one source.
  WPCKPT_TRY(chain.for_each_run(fn, progress, image::ImageChain::RunOrder::FramesOnce));
  if (uffd) stats.pages_copied = uffd->pages_copied();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

Result<FillStats> fill_mappings(const image::ImageChain& chain, int mem_fd,
                                const std::vector<state::Mapping>& mappings) {
  FillStats stats;
  auto t0 = std::chrono::steady_clock::now();
  constexpr uint64_t kRunPages = 256;  // 1 MiB per read and write
  PageBuffer buf;  // populated by the kernel in one call, not zero-filled page by page
  if (!buf.reserve(kRunPages * image::kPageSize))
    return errno_error("allocate the restore buffer", std::to_string(kRunPages * image::kPageSize) + " bytes");
  for (const auto& m : mappings) {
    for (uint64_t p = m.start; p < m.end;) {
      const image::PageSource first = chain.source(p);
      uint64_t e = p + image::kPageSize;
      while (e < m.end && (e - p) / image::kPageSize < kRunPages && chain.source(e).kind == first.kind)
        e += image::kPageSize;
      const size_t len = e - p;
      if (first.kind == image::PageSource::Stored) {
        WPCKPT_TRY(chain.read(p, std::span<std::byte>(buf.data(), len)));
        WPCKPT_TRY(write_all(mem_fd, p, buf.data(), len));
        stats.pages_stored += len / image::kPageSize;
        stats.bytes_written += len;
      } else if (first.kind == image::PageSource::Zero) {
        stats.pages_zero += len / image::kPageSize;
        if (!starts_zeroed(m)) {
          std::fill(buf.data(), buf.data() + len, std::byte{0});
          WPCKPT_TRY(write_all(mem_fd, p, buf.data(), len));
          stats.bytes_written += len;
        }
      }
      p = e;
    }
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace wpckpt::restore
