#include "lib/base/parse_number.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace wpckpt {
namespace {

TEST(ParseNumber, AcceptsWholeNumbersInEachBase) {
  EXPECT_EQ(*parse_number<uint64_t>("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(*parse_number<int>(" 02100\n", 8), 02100);
  EXPECT_EQ(*parse_number<uint64_t>("00000000fffffeff", 16), 0xfffffeffull);
  EXPECT_EQ(*parse_number<int>("-42"), -42);
}

TEST(ParseNumber, RefusesGarbageOverflowAndSignsWithAClearError) {
  auto garbage = parse_number<int>("12abc", 10, "fdinfo pos");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().err, EINVAL);
  EXPECT_NE(garbage.error().message().find("'12abc' (fdinfo pos)"), std::string::npos) << garbage.error().message();
  EXPECT_EQ(parse_number<uint32_t>("4294967296").error().err, ERANGE);
  EXPECT_FALSE(parse_number<uint64_t>("-1"));
  EXPECT_FALSE(parse_number<int>(""));
  EXPECT_FALSE(parse_number<int>("   "));
  EXPECT_FALSE(parse_number<uint64_t>("0x10", 16));
  EXPECT_FALSE(parse_number<int>("9", 8));
}

}  // namespace
}  // namespace wpckpt
