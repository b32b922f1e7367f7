// Checked conversion of text (a /proc field, a fdinfo value) to an integer:
// the whole text must be a number of the given base that fits T, else an
// Error naming the text and what it was meant to be. The replacement for
// std::sto* (which throw) and atoi (which cannot tell "0" from garbage).
#pragma once

#include <cerrno>
#include <charconv>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "lib/base/result.hpp"

namespace wpckpt {

// Leading and trailing blanks (space, tab, newline) are ignored; a sign only
// for signed T; no "0x" prefix (base 16 means bare hex digits).
template <typename T>
Result<T> parse_number(std::string_view text, int base = 10, std::string_view what = {}) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  auto fail = [&](int err) {
    std::string ctx = "'" + std::string(text.substr(0, 64)) + "'";
    if (!what.empty()) ctx += " (" + std::string(what) + ")";
    return make_error(err, base == 10 ? "parse number" : "parse base-" + std::to_string(base) + " number", ctx);
  };
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec == std::errc::result_out_of_range) return fail(ERANGE);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return fail(EINVAL);
  return value;
}

}  // namespace wpckpt
