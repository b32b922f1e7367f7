#include "lib/restore/memory_fill.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

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

// Private file memory reads the file's bytes where the process never wrote.
bool holds_file_data(const state::Mapping& m) { return !m.shared && !starts_zeroed(m); }

// Writes the pages of `data` that differ from what [addr, ...) reads now;
// returns how many were kept. Over a private file mapping a written page
// becomes a private copy: a library page written with its own bytes would
// lose its sharing with the page cache (every restored process its own
// copy of the code it maps), and cost the restore a page allocation and a
// copy. Where the current bytes cannot be read, everything is written.
// The bytes are exact either way. What differs: a page the process had
// copied (written) with bytes equal to the file's is the file's again, so
// a later change of the file through another mapping shows there, as it
// does in every page of the mapping the process never wrote.
Result<uint64_t> write_changed(int mem_fd, uint64_t addr, std::span<const std::byte> data, PageBuffer& now) {
  constexpr size_t kChunk = 1 << 20;
  if (!now.reserve(std::min(data.size(), kChunk))) {
    WPCKPT_TRY(write_all(mem_fd, addr, data.data(), data.size()));
    return 0;
  }
  uint64_t kept = 0;
  for (size_t off = 0; off < data.size();) {
    const size_t len = std::min(data.size() - off, kChunk);
    const std::byte* want = data.data() + off;
    if (::pread(mem_fd, now.data(), len, static_cast<off_t>(addr + off)) != static_cast<ssize_t>(len)) {
      WPCKPT_TRY(write_all(mem_fd, addr + off, want, len));
      off += len;
      continue;
    }
    auto same = [&](size_t at) { return std::memcmp(want + at, now.data() + at, image::kPageSize) == 0; };
    for (size_t p = 0; p < len;) {
      size_t q = p;  // [p, q): pages that differ, then [q, r): pages that do not
      while (q < len && !same(q)) q += image::kPageSize;
      if (q > p) WPCKPT_TRY(write_all(mem_fd, addr + off + p, want + p, q - p));
      size_t r = q;
      while (r < len && same(r)) r += image::kPageSize;
      kept += (r - q) / image::kPageSize;
      p = r;
    }
    off += len;
  }
  return kept;
}

// `data` at `addr` inside `m`: only what differs where m holds file data.
// Counted in `stats` (bytes written, pages kept).
Result<void> write_into(const state::Mapping& m, int mem_fd, uint64_t addr, std::span<const std::byte> data,
                        PageBuffer& now, FillStats& stats) {
  uint64_t kept = 0;
  if (holds_file_data(m)) {
    WPCKPT_TRY_ASSIGN(kept, write_changed(mem_fd, addr, data, now));
  } else {
    WPCKPT_TRY(write_all(mem_fd, addr, data.data(), data.size()));
  }
  stats.pages_kept += kept;
  stats.bytes_written += data.size() - kept * image::kPageSize;
  return ok();
}

}  // namespace

Result<FillStats> fill_memory(const image::ImageChain& chain, int mem_fd, UffdFill* uffd,
                              const std::vector<state::Mapping>& mappings, const ProgressFn& progress) {
  FillStats stats;
  auto t0 = std::chrono::steady_clock::now();
  static const std::vector<std::byte> zeros(1 << 20);
  size_t cursor = 0;  // mappings before it end at or before the current run

  PageBuffer now;  // what a private file mapping reads before it is written
  // Stored pages that no userfaultfd placed: written, except those a private
  // file mapping already holds.
  auto through_mem = [&](uint64_t addr, std::span<const std::byte> data) -> Result<void> {
    const uint64_t end = addr + data.size();
    auto it = std::upper_bound(mappings.begin(), mappings.end(), addr,
                               [](uint64_t a, const state::Mapping& m) { return a < m.end; });
    auto plain = [&](uint64_t from, uint64_t to) {
      stats.bytes_written += to - from;
      return write_all(mem_fd, from, data.data() + (from - addr), to - from);
    };
    for (uint64_t at = addr; at < end;) {
      if (it == mappings.end() || it->start >= end) return plain(at, end);
      if (it->start > at) {
        WPCKPT_TRY(plain(at, it->start));
        at = it->start;
      }
      const uint64_t stop = std::min(end, it->end);
      WPCKPT_TRY(write_into(*it, mem_fd, at, data.subspan(at - addr, stop - at), now, stats));
      at = stop;
      ++it;
    }
    return ok();
  };
  auto fn = [&](uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages) -> Result<void> {
    if (!data.empty()) {
      const uint64_t copied_before = uffd ? uffd->pages_copied() : 0;
      WPCKPT_TRY(uffd ? uffd->place(addr, data, through_mem) : through_mem(addr, data));
      stats.pages_stored += data.size() / image::kPageSize;
      if (uffd) stats.bytes_written += (uffd->pages_copied() - copied_before) * image::kPageSize;
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
        WPCKPT_TRY(write_into(m, mem_fd, a, std::span(zeros).first(len), now, stats));
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
  PageBuffer now;  // what a private file mapping reads before it is written
  for (const auto& m : mappings) {
    for (uint64_t p = m.start; p < m.end;) {
      const image::PageSource first = chain.source(p);
      uint64_t e = p + image::kPageSize;
      while (e < m.end && (e - p) / image::kPageSize < kRunPages && chain.source(e).kind == first.kind)
        e += image::kPageSize;
      const size_t len = e - p;
      if (first.kind == image::PageSource::Stored) {
        WPCKPT_TRY(chain.read(p, std::span<std::byte>(buf.data(), len)));
        WPCKPT_TRY(write_into(m, mem_fd, p, std::span<const std::byte>(buf.data(), len), now, stats));
        stats.pages_stored += len / image::kPageSize;
      } else if (first.kind == image::PageSource::Zero) {
        stats.pages_zero += len / image::kPageSize;
        if (!starts_zeroed(m)) {
          std::fill(buf.data(), buf.data() + len, std::byte{0});
          WPCKPT_TRY(write_into(m, mem_fd, p, std::span<const std::byte>(buf.data(), len), now, stats));
        }
      }
      p = e;
    }
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace wpckpt::restore
