// /proc/PID/fdinfo/N, parsed: "key: value" lines, numbers read with checks.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "lib/base/parse_number.hpp"
#include "lib/base/result.hpp"

namespace wpckpt::fds {

struct FdInfo {
  std::vector<std::pair<std::string, std::string>> fields;  // key -> value (blanks trimmed), in order
  std::vector<std::string> lines;
  std::string where;  // "/proc/PID/fdinfo/N", for errors

  static FdInfo parse(const std::string& text, std::string where);
  std::string get(const std::string& key) const;  // the first such line's value, "" if none
  bool has(const std::string& key) const;
  // A numeric field; missing or malformed is an error naming the file and the key.
  template <typename T>
  Result<T> number(const std::string& key, int base = 10) const {
    if (!has(key)) return make_error(EINVAL, "parse", where + " (no '" + key + "' line)");
    return parse_number<T>(get(key), base, where + " " + key);
  }
};

}  // namespace wpckpt::fds
