// libFuzzer target: tree.json (lib/state/tree_state.hpp), the list of a
// process tree's image that restore trusts for pids, parents, sessions and
// groups. Whatever the bytes, parsing returns a Result and never throws or
// crashes; what parses is valid and must serialize and parse back to the
// same document.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lib/state/tree_state.hpp"

using namespace wpckpt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto first = state::parse_tree(std::as_bytes(std::span(data, size)));
  if (!first) return 0;
  if (!state::validate_tree(*first)) __builtin_trap();
  auto again = state::serialize_tree(*first);
  if (!again) return 0;  // a name that is not UTF-8 is refused, not written
  auto second = state::parse_tree(std::as_bytes(std::span(again->data(), again->size())));
  if (!second || *state::serialize_tree(*second) != *again) __builtin_trap();
  return 0;
}
