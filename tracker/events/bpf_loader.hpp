// The BPF side of the event queue, loaded and attached for one target
// (tracker/bpf/events.bpf.c). The only place that knows the skeleton and
// libbpf; everything else uses tracker/events/event_reader.hpp.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "lib/base/result.hpp"
#include "tracker/bpf/event_record.h"

namespace wpckpt::tracker {

// Receives the records of one consume() call, in ring order.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_fault(const wpckpt_fault_record& r) = 0;
  virtual void on_change(const wpckpt_change_record& r) = 0;
};

class BpfEventSource {
 public:
  // Loads the programs for `target`, attaches all of them and learns the
  // target's address space. Fails (with what is missing and a hint) when
  // the event queue was not built, BPF is refused or an attach point is
  // missing.
  static Result<std::unique_ptr<BpfEventSource>> open(pid_t target);
  virtual ~BpfEventSource() = default;

  // Hands every record now in the ring to `sink`; never blocks.
  virtual Result<size_t> consume(EventSink& sink) = 0;
  // Kernel-side counters (lost records, changes seen, the target's mm).
  virtual wpckpt_event_counters counters() const = 0;
};

}  // namespace wpckpt::tracker
