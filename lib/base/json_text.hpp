// JSON text appended straight to a string, byte for byte what nlohmann's
// dump() writes (compact), without building a document or a serializer per
// value: the manifest and process.json of a process with 32,000 areas are
// 6 MB each, made inside a final dump's stop. Anything but plain printable
// ASCII in a string, and any floating-point number, goes through nlohmann's
// own serializer, so escapes and number formats stay nlohmann's.
#pragma once

#include <nlohmann/json.hpp>

#include <charconv>
#include <string>
#include <string_view>

namespace wpckpt {

// What a string that is not UTF-8 does: throws nlohmann::json::exception,
// as dump() does, or is written with U+FFFD in place of the bad bytes.
enum class InvalidUtf8 { Throw, Replace };

inline void append_json_string(std::string& out, std::string_view s, InvalidUtf8 invalid = InvalidUtf8::Throw) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      auto handler = invalid == InvalidUtf8::Replace ? nlohmann::json::error_handler_t::replace
                                                     : nlohmann::json::error_handler_t::strict;
      out += nlohmann::json(std::string(s)).dump(-1, ' ', false, handler);
      return;
    }
  }
  out += '"';
  out += s;
  out += '"';
}

template <typename Integer>
void append_json_integer(std::string& out, Integer v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// A whole value, objects in their (sorted) key order as dump() writes them.
inline void append_json_value(std::string& out, const nlohmann::json& j, InvalidUtf8 invalid = InvalidUtf8::Throw) {
  using value_t = nlohmann::json::value_t;
  switch (j.type()) {
    case value_t::null: out += "null"; return;
    case value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case value_t::number_integer: append_json_integer(out, j.get<int64_t>()); return;
    case value_t::number_unsigned: append_json_integer(out, j.get<uint64_t>()); return;
    case value_t::string: append_json_string(out, j.get_ref<const std::string&>(), invalid); return;
    case value_t::object: {
      out += '{';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, it.key(), invalid);
        out += ':';
        append_json_value(out, it.value(), invalid);
      }
      out += '}';
      return;
    }
    case value_t::array: {
      out += '[';
      for (size_t i = 0; i < j.size(); ++i) {
        if (i) out += ',';
        append_json_value(out, j[i], invalid);
      }
      out += ']';
      return;
    }
    default: break;  // floating point, binary, discarded
  }
  out += j.dump(-1, ' ', false,
                invalid == InvalidUtf8::Replace ? nlohmann::json::error_handler_t::replace
                                                : nlohmann::json::error_handler_t::strict);
}

}  // namespace wpckpt
