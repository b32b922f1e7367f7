// The text of what json_fields.hpp writes, written straight into a string
// by the same `fields()` lists, without a JSON document in between: the
// process.json of a process with 16,000 mappings took 120 ms to make as a
// document and dump, inside a final dump's freeze. Members are in the order
// of `fields()` (readers look keys up); strings and numbers are written as
// lib/base/json_text.hpp writes them, so a string that is not UTF-8 throws
// nlohmann::json::exception as dump() does.
#pragma once

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lib/base/json_text.hpp"
#include "lib/state/json_fields.hpp"

namespace wpckpt::state {

namespace json_text_detail {
template <typename T>
struct is_vector : std::false_type {};
template <typename T, typename A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <typename T>
struct is_pair : std::false_type {};
template <typename A, typename B>
struct is_pair<std::pair<A, B>> : std::true_type {};
}  // namespace json_text_detail

template <typename T>
void append_json(std::string& out, const T& v);

class JsonTextWriter {
 public:
  explicit JsonTextWriter(std::string& out) : out_(out) {}
  template <typename T>
  void req(const char* key, const T& v) {
    member(key);
    append_json(out_, v);
  }
  template <typename T>
  void opt(const char* key, const T& v) {
    member(key);
    append_json(out_, v);
  }
  template <typename T>
  void opt(const char* key, const std::optional<T>& v) {  // absent when empty
    if (!v) return;
    member(key);
    append_json(out_, *v);
  }

 private:
  void member(const char* key) {
    if (!first_) out_ += ',';
    first_ = false;
    append_json_string(out_, key);
    out_ += ':';
  }
  std::string& out_;
  bool first_ = true;
};

template <typename T>
void append_json(std::string& out, const T& v) {
  using namespace json_text_detail;
  if constexpr (std::is_same_v<T, bool>) {
    out += v ? "true" : "false";
  } else if constexpr (std::is_integral_v<T>) {
    append_json_integer(out, v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    append_json_string(out, v);
  } else if constexpr (std::is_same_v<T, std::vector<uint8_t>>) {
    append_json_string(out, to_hex(v));
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    append_json_value(out, v);
  } else if constexpr (is_vector<T>::value) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ',';
      append_json(out, v[i]);
    }
    out += ']';
  } else if constexpr (is_pair<T>::value) {
    out += '[';
    append_json(out, v.first);
    out += ',';
    append_json(out, v.second);
    out += ']';
  } else if constexpr (requires(JsonTextWriter& w, T& x) { fields(w, x); }) {
    out += '{';
    JsonTextWriter w(out);
    fields(w, const_cast<T&>(v));  // fields() takes its value non-const (the reader fills it)
    out += '}';
  } else {
    out += write_json(v).dump();  // enums, fractions: as the document writer writes them
  }
}

}  // namespace wpckpt::state
