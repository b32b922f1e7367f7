// The reader's side of the write-fault rings: one ring per CPU in an
// mmapable BPF array map, filled by events.bpf.c (the protocol is in
// tracker/bpf/event_record.h). A record a writer is still filling stays for
// the next drain; one a writer went round the ring onto is counted lost,
// never passed on.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/result.hpp"
#include "tracker/bpf/event_record.h"
#include "tracker/events/bpf_loader.hpp"

namespace wpckpt::tracker {

class FaultRings {
 public:
  // Maps the array map `map_fd` of `cpus` rings.
  static Result<FaultRings> map(int map_fd, uint32_t cpus);
  // Rings the caller owns, laid out as the map lays them out (ring_stride()
  // bytes each): for the tests of the protocol.
  FaultRings(std::byte* rings, uint32_t cpus) : base_(rings), cpus_(cpus) {}
  FaultRings(FaultRings&& other) noexcept;
  FaultRings& operator=(FaultRings&& other) noexcept;
  FaultRings(const FaultRings&) = delete;
  FaultRings& operator=(const FaultRings&) = delete;
  ~FaultRings();

  static constexpr size_t ring_stride() { return (sizeof(wpckpt_fault_ring) + 7) / 8 * 8; }

  // Hands every ready record to `sink`, ring by ring, in each ring's order.
  size_t drain(EventSink& sink);
  // Records overwritten before they were read.
  uint64_t overwritten() const { return overwritten_; }

 private:
  wpckpt_fault_ring* ring(uint32_t cpu) const {
    return reinterpret_cast<wpckpt_fault_ring*>(base_ + size_t{cpu} * ring_stride());
  }
  std::byte* base_ = nullptr;
  size_t mapped_bytes_ = 0;  // 0: not ours to unmap
  uint32_t cpus_ = 0;
  uint64_t overwritten_ = 0;
};

}  // namespace wpckpt::tracker
