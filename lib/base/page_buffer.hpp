// A reusable, page-aligned byte buffer for bulk page data (copies out of a
// process, compression batches, restore fills). Sized by the work: it grows
// on demand and is never shrunk or cleared. Its memory is populated by the
// kernel in one call (MADV_POPULATE_WRITE) and backed by transparent huge
// pages where the kernel allows: on this machine a page fault costs tens of
// µs (KERNEL-FACTS section 11), so a fresh buffer touched one page at a
// time — or zero-filled, as std::vector does — can cost more than the work.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace wpckpt {

// Lets the kernel populate the whole pages of [p, p + bytes) in one call
// (best effort): memory about to be written without a fault per page.
inline void populate_pages(void* p, size_t bytes) {
  constexpr uintptr_t kPage = 4096;
  uintptr_t start = (reinterpret_cast<uintptr_t>(p) + kPage - 1) & ~(kPage - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kPage - 1);
  if (end > start) ::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
}

// Has the kernel write every page of [p, p + bytes) once (a read of
// /dev/zero). On this guest the kernel's first write to a user page costs
// ~7-8 µs even when the page is populated and user mode wrote it: a final
// dump read its 316 pages into warmed but kernel-untouched batch buffers in
// 3.1 ms, 0.6 ms after this. For buffers that process_vm_readv or read()
// fill inside a freeze. Best effort.
inline void touch_from_kernel(void* p, size_t bytes) {
  int zero = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
  if (zero < 0) return;
  auto* at = static_cast<char*>(p);
  while (bytes > 0) {
    ssize_t n = ::read(zero, at, bytes);
    if (n <= 0) break;
    at += n;
    bytes -= static_cast<size_t>(n);
  }
  ::close(zero);
}

// Reserves `bytes` in `v` and populates them when that allocated new memory.
inline void reserve_populated(std::vector<std::byte>& v, size_t bytes) {
  if (v.capacity() >= bytes) return;
  v.reserve(bytes);
  populate_pages(v.data(), v.capacity());
}

class PageBuffer {
 public:
  PageBuffer() = default;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  PageBuffer(PageBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), capacity_(std::exchange(o.capacity_, 0)) {}
  PageBuffer& operator=(PageBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }
  ~PageBuffer() { release(); }

  // At least `bytes` usable bytes (contents unspecified after a growth).
  // False if the memory cannot be had; the old buffer then stays.
  // From a huge page on, whole huge pages; below, just the pages asked for:
  // populating is zeroing, and memory a batch never fills costs as much to
  // zero here as memory it does (a 1 MiB batch in a 2 MiB huge page doubled
  // it).
  bool reserve(size_t bytes) {
    if (bytes <= capacity_) return true;
    const bool huge = bytes >= kHugePage;
    const size_t unit = huge ? kHugePage : kSmallPage;
    size_t size = (bytes + unit - 1) / unit * unit;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    if (huge) ::madvise(p, size, MADV_HUGEPAGE);  // best effort: THP mode may be "never"
    ::madvise(p, size, MADV_POPULATE_WRITE);       // best effort: older kernels fault on first touch
    release();
    data_ = static_cast<std::byte*>(p);
    capacity_ = size;
    return true;
  }

  std::byte* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  static constexpr size_t kHugePage = size_t{2} << 20, kSmallPage = 4096;
  void release() {
    if (data_) ::munmap(data_, capacity_);
    data_ = nullptr;
    capacity_ = 0;
  }
  std::byte* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace wpckpt
