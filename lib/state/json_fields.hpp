// Type-checked reading (and the matching writing) of JSON fields: the only
// way process.json and its kind-specific parts are read. Nothing here throws:
// a field of the wrong type, out of range or missing when required is an
// Error naming the field by its path ("fds[3].details.count").
//
// A struct lists its fields once, in `fields(visitor, value)`; the same list
// serves JsonWriter and JsonReader:
//   template <typename V> void fields(V& v, Foo& x) { v.req("a", x.a); v.opt("b", x.b); }
// req: must be present; opt: absent keeps the default (the compatibility rule
// of process.json: fields are only added, with a default).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::state {

std::string to_hex(std::span<const uint8_t> bytes);
bool from_hex(const std::string& text, std::vector<uint8_t>& out);

// What went wrong with a field, as the one error of a failed read.
Error field_error(const std::string& where, const std::string& what);

// ---- reading one value ----

inline std::string json_type_name(const nlohmann::json& j) {
  if (j.is_number_unsigned()) return "an unsigned integer";
  if (j.is_number_integer()) return "a negative integer";
  if (j.is_number_float()) return "a fraction";
  if (j.is_array() || j.is_object()) return std::string("an ") + j.type_name();
  return std::string("a ") + j.type_name();
}

template <typename T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
Result<void> read_json(const nlohmann::json& j, T& out, const std::string& where) {
  if (const auto* u = j.get_ptr<const nlohmann::json::number_unsigned_t*>()) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<T>::max()))
      return field_error(where, "is " + std::to_string(*u) + ", out of range");
    out = static_cast<T>(*u);
    return ok();
  }
  if (const auto* i = j.get_ptr<const nlohmann::json::number_integer_t*>()) {
    if (*i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (*i > 0 && static_cast<uint64_t>(*i) > static_cast<uint64_t>(std::numeric_limits<T>::max())))
      return field_error(where, "is " + std::to_string(*i) + ", out of range");
    out = static_cast<T>(*i);
    return ok();
  }
  return field_error(where, "must be an integer, is " + json_type_name(j));
}

inline Result<void> read_json(const nlohmann::json& j, bool& out, const std::string& where) {
  const auto* b = j.get_ptr<const nlohmann::json::boolean_t*>();
  if (!b) return field_error(where, "must be true or false, is " + json_type_name(j));
  out = *b;
  return ok();
}

inline Result<void> read_json(const nlohmann::json& j, std::string& out, const std::string& where) {
  const auto* s = j.get_ptr<const nlohmann::json::string_t*>();
  if (!s) return field_error(where, "must be a string, is " + json_type_name(j));
  out = *s;
  return ok();
}

// Binary blobs are lowercase hex strings.
inline Result<void> read_json(const nlohmann::json& j, std::vector<uint8_t>& out, const std::string& where) {
  const auto* s = j.get_ptr<const nlohmann::json::string_t*>();
  if (!s) return field_error(where, "must be a hex string, is " + json_type_name(j));
  if (!from_hex(*s, out)) return field_error(where, "is not lowercase hex of whole bytes");
  return ok();
}

inline Result<void> read_json(const nlohmann::json& j, nlohmann::json& out, const std::string&) {
  out = j;
  return ok();
}

template <typename T>
Result<void> read_json(const nlohmann::json& j, std::vector<T>& out, const std::string& where);
template <typename A, typename B>
Result<void> read_json(const nlohmann::json& j, std::pair<A, B>& out, const std::string& where);
template <typename T>
Result<void> read_json(const nlohmann::json& j, std::optional<T>& out, const std::string& where);

// Reads the fields of one object (see the file comment); the first bad
// field is the error, the others are not looked at.
class JsonReader {
 public:
  JsonReader(const nlohmann::json& obj, std::string where) : obj_(obj), where_(std::move(where)) {
    if (!obj_.is_object()) error_ = field_error(where_.empty() ? "the document" : where_,
                                                 "must be an object, is " + json_type_name(obj_));
  }
  template <typename T>
  void req(const char* key, T& out) {
    read(key, out, true);
  }
  template <typename T>
  void opt(const char* key, T& out) {
    read(key, out, false);
  }
  Result<void> result() const {
    if (error_) return *error_;
    return ok();
  }

 private:
  template <typename T>
  void read(const char* key, T& out, bool required) {
    if (error_) return;
    std::string where = where_.empty() ? std::string(key) : where_ + "." + key;
    auto it = obj_.find(key);
    if (it == obj_.end()) {
      if (required) error_ = field_error(where, "is missing");
      return;
    }
    if (auto r = read_json(*it, out, where); !r) error_ = std::move(r).error();
  }
  const nlohmann::json& obj_;
  std::string where_;
  std::optional<Error> error_;
};

// A struct with a fields() list.
template <typename T>
  requires requires(JsonReader& r, T& x) { fields(r, x); }
Result<void> read_json(const nlohmann::json& j, T& out, const std::string& where) {
  JsonReader reader(j, where);
  fields(reader, out);
  return reader.result();
}

template <typename T>
Result<void> read_json(const nlohmann::json& j, std::vector<T>& out, const std::string& where) {
  const auto* a = j.get_ptr<const nlohmann::json::array_t*>();
  if (!a) return field_error(where, "must be an array, is " + json_type_name(j));
  out.clear();
  out.reserve(a->size());
  for (size_t i = 0; i < a->size(); ++i) {
    T item{};
    WPCKPT_TRY(read_json((*a)[i], item, where + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(item));
  }
  return ok();
}

template <typename A, typename B>
Result<void> read_json(const nlohmann::json& j, std::pair<A, B>& out, const std::string& where) {
  const auto* a = j.get_ptr<const nlohmann::json::array_t*>();
  if (!a || a->size() != 2) return field_error(where, "must be an array of two, is " + json_type_name(j));
  WPCKPT_TRY(read_json((*a)[0], out.first, where + "[0]"));
  return read_json((*a)[1], out.second, where + "[1]");
}

template <typename T>
Result<void> read_json(const nlohmann::json& j, std::optional<T>& out, const std::string& where) {
  T value{};
  WPCKPT_TRY(read_json(j, value, where));
  out = std::move(value);
  return ok();
}

// ---- writing ----

template <typename T>
  requires(std::is_arithmetic_v<T>)
nlohmann::json write_json(const T& v) {
  return v;
}
inline nlohmann::json write_json(const std::string& v) { return v; }
inline nlohmann::json write_json(const std::vector<uint8_t>& v) { return to_hex(v); }
inline nlohmann::json write_json(const nlohmann::json& v) { return v; }
template <typename T>
nlohmann::json write_json(const std::vector<T>& v);
template <typename A, typename B>
nlohmann::json write_json(const std::pair<A, B>& v);

class JsonWriter {
 public:
  template <typename T>
  void req(const char* key, const T& v) {
    obj[key] = write_json(v);
  }
  template <typename T>
  void opt(const char* key, const T& v) {
    obj[key] = write_json(v);
  }
  template <typename T>
  void opt(const char* key, const std::optional<T>& v) {  // absent when empty
    if (v) obj[key] = write_json(*v);
  }
  nlohmann::json obj = nlohmann::json::object();
};

// fields() takes its value non-const (the reader fills it); the writer only reads it.
template <typename T>
  requires requires(JsonWriter& w, T& x) { fields(w, x); }
nlohmann::json write_json(const T& v) {
  JsonWriter writer;
  fields(writer, const_cast<T&>(v));
  return std::move(writer.obj);
}

template <typename T>
nlohmann::json write_json(const std::vector<T>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& x : v) a.push_back(write_json(x));
  return a;
}
template <typename A, typename B>
nlohmann::json write_json(const std::pair<A, B>& v) {
  return nlohmann::json::array({write_json(v.first), write_json(v.second)});
}

}  // namespace wpckpt::state
