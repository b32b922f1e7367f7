#include "lib/ptrace/call_batch.hpp"

#include <fmt/format.h>

#include "lib/base/uapi/process.hpp"

namespace wpckpt::ptrace {

Result<void> CallBatch::add(const char* what, std::string context, long nr, std::array<uint64_t, 6> args,
                            std::optional<long> expect) {
  calls_.push_back({nr, args});
  pending_.push_back({what, std::move(context), expect});
  if (calls_.size() >= Injector::kBatchMaxCalls) return flush();
  return ok();
}

Result<void> CallBatch::flush() {
  if (calls_.empty()) return ok();
  std::vector<Injector::Call> calls = std::move(calls_);
  std::vector<Pending> pending = std::move(pending_);
  calls_.clear();
  pending_.clear();
  ++round_trips_;
  WPCKPT_TRY_ASSIGN(std::vector<long> results, inj_.batch(calls));
  for (size_t i = 0; i < results.size(); ++i) {
    const long r = results[i];
    if (uapi::is_syscall_error(r)) return make_error(static_cast<int>(-r), pending[i].what, pending[i].context);
    if (pending[i].expect && r != *pending[i].expect)
      return make_error(EFAULT, pending[i].what,
                        fmt::format("{}: returned {:#x}, not {:#x}", pending[i].context, r, *pending[i].expect));
  }
  return ok();
}

}  // namespace wpckpt::ptrace
