// An eager restore places stored pages into fresh private anonymous memory
// with UFFDIO_COPY instead of writing them through /proc/PID/mem. A write
// there faults each page in first, which allocates and clears it, then copies
// over it: clear_page was 11.6% of a 1 GiB restore's samples. UFFDIO_COPY
// allocates the page and copies into it, once (docs/KERNEL.md §11).
//
// The userfaultfd is created inside the stopped process (its memory is the
// one a userfaultfd acts on), taken with pidfd_getfd and closed there again,
// so the process never holds it; the mappings are registered MISSING only
// while the fill runs. A process or kernel that refuses any step gets the
// /proc/PID/mem path, which was always the fallback.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::ptrace {
class Injector;
}

namespace wpckpt::restore {

class UffdFill {
 public:
  // Registers the mappings (in address order) that restore just created as
  // fresh private anonymous memory where a fault would not get a transparent
  // huge page. Null when there are none, or where the process or kernel does
  // not allow it (the reason logged): the caller writes every page itself.
  static std::unique_ptr<UffdFill> start(ptrace::Injector& inj, pid_t pid, const std::vector<state::Mapping>& mappings);
  // The same with a userfaultfd the process made itself (no UFFDIO_API yet).
  static std::unique_ptr<UffdFill> adopt(UniqueFd uffd, pid_t pid, const std::vector<state::Mapping>& mappings);
  ~UffdFill();  // unregisters what is still registered
  UffdFill(const UffdFill&) = delete;
  UffdFill& operator=(const UffdFill&) = delete;

  // Places the parts of [addr, addr + data.size()) that lie in registered
  // mappings; calls `write(addr, bytes)` for every other part: pages outside
  // them, a page already present (EEXIST), and after any other refusal,
  // when everything is unregistered first and the rest goes to `write`.
  template <class Write>
  Result<void> place(uint64_t addr, std::span<const std::byte> data, Write&& write);

  uint64_t pages_copied() const { return pages_copied_; }

  struct Range {
    uint64_t start = 0, end = 0;
  };

 private:
  static constexpr uint64_t kPage = 4096;
  enum class Copy { Done, Present, Refused };
  explicit UffdFill(UniqueFd uffd) : uffd_(std::move(uffd)) {}
  static std::unique_ptr<UffdFill> register_ranges(UniqueFd uffd, pid_t pid, const std::vector<Range>& wanted);
  // UFFDIO_COPY of [addr, addr + len) inside one range: how far it got.
  Copy copy(uint64_t addr, const std::byte* src, uint64_t len, uint64_t& done);
  void unregister_all();

  UniqueFd uffd_;
  std::vector<Range> ranges_;  // one per mapping, sorted, disjoint; empty once unregistered
  uint64_t pages_copied_ = 0;
};

template <class Write>
Result<void> UffdFill::place(uint64_t addr, std::span<const std::byte> data, Write&& write) {
  const uint64_t end = addr + data.size();
  auto bytes = [&](uint64_t from, uint64_t to) { return data.subspan(from - addr, to - from); };
  uint64_t at = addr;
  while (at < end) {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), at,
                               [](uint64_t a, const Range& r) { return a < r.end; });
    if (it == ranges_.end() || it->start >= end) return write(at, bytes(at, end));
    if (it->start > at) {
      WPCKPT_TRY(write(at, bytes(at, it->start)));
      at = it->start;
    }
    const uint64_t stop = std::min(end, it->end);
    while (at < stop) {
      uint64_t done = 0;
      const Copy c = copy(at, data.data() + (at - addr), stop - at, done);
      at += done;
      if (c == Copy::Present) {
        WPCKPT_TRY(write(at, bytes(at, at + kPage)));  // present: no fault, so no userfault either
        at += kPage;
      } else if (c == Copy::Refused) {
        unregister_all();
        return write(at, bytes(at, end));
      }
    }
  }
  return ok();
}

}  // namespace wpckpt::restore
