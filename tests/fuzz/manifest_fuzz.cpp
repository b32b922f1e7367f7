// libFuzzer target: manifest.json. Each input is parsed as it is, and once
// more with its checksum repaired, so the fuzzer also reaches the field checks
// behind the checksum.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "dump-format/digest.hpp"
#include "dump-format/manifest.hpp"

using namespace wpckpt::image;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::as_bytes(std::span(data, size));
  auto first = parse_manifest(bytes, "manifest.json");
  if (first) {
    // What parses must encode and parse back to the same document.
    std::string again = encode_manifest(*first);
    auto second = parse_manifest(std::as_bytes(std::span(again.data(), again.size())), "manifest.json");
    if (!second) __builtin_trap();
  }
  nlohmann::json j = nlohmann::json::parse(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size,
                                           nullptr, false);
  if (j.is_discarded() || !j.is_object() || size > 65536) return 0;
  // Deep documents are refused by parse_manifest before any dump(); keep
  // the repair below to shallow ones, which it accepts to look at.
  size_t depth = 0, max_depth = 0;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '[' || data[i] == '{') max_depth = std::max(max_depth, ++depth);
    if ((data[i] == ']' || data[i] == '}') && depth) --depth;
  }
  if (max_depth > 32) return 0;
  j.erase("checksum");
  std::string body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  j["checksum"] = digest_bytes(std::as_bytes(std::span(body.data(), body.size()))).hex();
  std::string repaired = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  (void)parse_manifest(std::as_bytes(std::span(repaired.data(), repaired.size())), "manifest.json");
  return 0;
}
