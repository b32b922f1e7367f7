// Injected calls queued and run in batches (Injector::batch): one ptrace
// round trip for up to Injector::kBatchMaxCalls calls instead of one each.
// A restore maps every area with an injected mmap; at tens of µs a round
// trip on a VM, 32,000 areas spent seconds in ptrace stops alone.
// Each call is checked as checked_syscall() checks it, and the first failure
// is reported with its own `what` and context. Arguments must not point into
// the batch table (Injector::batch_table()). flush() before any other call
// that must see these calls' effects.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"

namespace wpckpt::ptrace {

class CallBatch {
 public:
  explicit CallBatch(Injector& inj) : inj_(inj) {}
  CallBatch(const CallBatch&) = delete;
  CallBatch& operator=(const CallBatch&) = delete;

  // Queues a call; runs the queue when it is full. `expect`: the value the
  // call must return (an mmap at a fixed address), else any that is not an
  // error.
  Result<void> add(const char* what, std::string context, long nr, std::array<uint64_t, 6> args,
                   std::optional<long> expect = std::nullopt);
  // Runs what is queued.
  Result<void> flush();
  uint64_t round_trips() const { return round_trips_; }

 private:
  struct Pending {
    const char* what;
    std::string context;
    std::optional<long> expect;
  };
  Injector& inj_;
  std::vector<Injector::Call> calls_;
  std::vector<Pending> pending_;
  uint64_t round_trips_ = 0;
};

}  // namespace wpckpt::ptrace
