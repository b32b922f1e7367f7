// libFuzzer target: process.json (lib/state) and the descriptor plan built
// from it (lib/restore). Whatever the bytes, parsing returns a Result and
// never throws or crashes; what parses must serialize and parse back to the
// same document, and planning its descriptors must end in a plan or an error.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lib/restore/child_plan.hpp"
#include "lib/state/process_state.hpp"

using namespace wpckpt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto first = state::parse(std::as_bytes(std::span(data, size)));
  if (!first) return 0;
  auto again = state::serialize(*first);
  if (!again) __builtin_trap();  // parsed strings are UTF-8: they serialize
  auto second = state::parse(std::as_bytes(std::span(again->data(), again->size())));
  if (!second || *state::serialize(*second) != *again) __builtin_trap();
  restore::ChildPlan plan;
  auto no_files = [](const std::string& name) -> Result<std::vector<std::byte>> {
    return make_error(ENOENT, "read image file", name);
  };
  (void)restore::plan_fds(*first, plan, no_files);
  return 0;
}
