#include "tracker/events/fault_rings.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <utility>

namespace wpckpt::tracker {

Result<FaultRings> FaultRings::map(int map_fd, uint32_t cpus) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t bytes = (ring_stride() * cpus + page - 1) / page * page;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (p == MAP_FAILED) return errno_error("mmap", "the write-fault rings");
  FaultRings rings(static_cast<std::byte*>(p), cpus);
  rings.mapped_bytes_ = bytes;
  return rings;
}

FaultRings::FaultRings(FaultRings&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)),
      mapped_bytes_(std::exchange(other.mapped_bytes_, 0)),
      cpus_(std::exchange(other.cpus_, 0)),
      overwritten_(other.overwritten_) {}

FaultRings& FaultRings::operator=(FaultRings&& other) noexcept {
  if (this != &other) {
    if (mapped_bytes_ != 0) ::munmap(base_, mapped_bytes_);
    base_ = std::exchange(other.base_, nullptr);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
    cpus_ = std::exchange(other.cpus_, 0);
    overwritten_ = other.overwritten_;
  }
  return *this;
}

FaultRings::~FaultRings() {
  if (mapped_bytes_ != 0) ::munmap(base_, mapped_bytes_);
}

size_t FaultRings::drain(EventSink& sink) {
  size_t n = 0;
  for (uint32_t cpu = 0; cpu < cpus_; ++cpu) {
    wpckpt_fault_ring* r = ring(cpu);
    const uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    uint64_t tail = r->tail;  // only the reader writes it
    for (; tail < head; ++tail) {
      wpckpt_fault_slot& slot = r->slots[tail & (WPCKPT_FAULT_RING_SLOTS - 1)];
      const uint64_t seq = __atomic_load_n(&slot.seq, __ATOMIC_ACQUIRE);
      if (seq < tail + 1) break;  // its writer is still filling it: the next drain takes it
      wpckpt_fault_record rec;
      __builtin_memcpy(&rec, &slot.rec, sizeof rec);
      if (seq != tail + 1 || __atomic_load_n(&slot.seq, __ATOMIC_ACQUIRE) != seq) {
        ++overwritten_;  // a writer went round the ring onto it
        continue;
      }
      sink.on_fault(rec);
      ++n;
    }
    __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
  }
  return n;
}

}  // namespace wpckpt::tracker
