// The JSON text written without a document must be nlohmann's dump() to the
// byte: manifests are checked against their canonical form when read.
#include "lib/base/json_text.hpp"

#include <gtest/gtest.h>

namespace wpckpt {
namespace {

std::string written(const nlohmann::json& j, InvalidUtf8 invalid = InvalidUtf8::Throw) {
  std::string out;
  append_json_value(out, j, invalid);
  return out;
}

TEST(JsonText, ValuesAreWhatDumpWrites) {
  const nlohmann::json values[] = {
      nullptr,
      true,
      false,
      0,
      -1,
      INT64_MIN,
      UINT64_MAX,
      1.5,
      -0.25e-300,
      "",
      "plain text",
      "quote \" backslash \\ tab \t newline \n bell \x07 del \x7f",
      "caf\xc3\xa9 \xe2\x82\xac",
      nlohmann::json::array(),
      nlohmann::json::object(),
      {{"z", 1}, {"a", {1, 2, {{"k", "v"}}}}, {"m", nullptr}, {"\xc3\xa9", "key not ascii"}},
      nlohmann::json::array({nlohmann::json::array({nlohmann::json::array()}), 3.0, "x"}),
  };
  for (const auto& v : values) {
    EXPECT_EQ(written(v), v.dump()) << v.dump();
    EXPECT_EQ(written(v, InvalidUtf8::Replace), v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
}

TEST(JsonText, InvalidUtf8ThrowsOrIsReplacedAsDumpDoes) {
  const nlohmann::json bad = {{"path", std::string("a\xff") + "b"}};
  EXPECT_THROW(written(bad), nlohmann::json::exception);
  EXPECT_EQ(written(bad, InvalidUtf8::Replace), bad.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  EXPECT_NE(written(bad, InvalidUtf8::Replace).find("\xef\xbf\xbd"), std::string::npos);  // U+FFFD
}

TEST(JsonText, IntegersOfEveryWidth) {
  std::string out;
  append_json_integer(out, uint8_t{255});
  out += ' ';
  append_json_integer(out, int16_t{-32768});
  out += ' ';
  append_json_integer(out, uint64_t{18446744073709551615ull});
  EXPECT_EQ(out, "255 -32768 18446744073709551615");
}

}  // namespace
}  // namespace wpckpt
