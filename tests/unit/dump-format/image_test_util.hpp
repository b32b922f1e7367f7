// Helpers of the dump-format tests: deterministic page contents and a
// reference model of what a chain must resolve to.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "dump-format/image.hpp"

namespace wpckpt::image::test {

// A page whose bytes depend on (seed, addr); `kind` 0 = zero page,
// 1 = compressible text-like, 2 = random.
inline std::vector<std::byte> make_page(uint64_t seed, uint64_t addr, int kind) {
  std::vector<std::byte> page(kPageSize);
  if (kind == 0) return page;
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull ^ addr);
  if (kind == 1) {
    uint64_t word = rng();
    for (size_t i = 0; i < kPageSize; i += 8) {
      uint64_t v = (i % 64 == 0) ? rng() % 1000 : word;
      std::memcpy(page.data() + i, &v, 8);
    }
  } else {
    for (size_t i = 0; i < kPageSize; i += 8) {
      uint64_t v = rng();
      std::memcpy(page.data() + i, &v, 8);
    }
  }
  return page;
}

inline MemoryArea area(uint64_t start, uint64_t end, bool contents = true) {
  MemoryArea a;
  a.start = start;
  a.end = end;
  a.prot = "rw-p";
  a.backing = "anon";
  a.contents = contents;
  return a;
}

// Reference model: address -> page bytes (absent = zero).
using Model = std::map<uint64_t, std::vector<std::byte>>;

inline void expect_matches_model(const ImageChain& chain, const Model& model, const std::vector<MemoryArea>& areas) {
  std::vector<std::byte> buf(kPageSize);
  const std::vector<std::byte> zero(kPageSize);
  for (const MemoryArea& a : areas) {
    if (!a.contents) continue;
    for (uint64_t p = a.start; p < a.end; p += kPageSize) {
      auto r = chain.read(p, buf);
      ASSERT_TRUE(r) << r.error().message();
      auto it = model.find(p);
      const std::vector<std::byte>& want = it == model.end() ? zero : it->second;
      ASSERT_EQ(0, std::memcmp(buf.data(), want.data(), kPageSize)) << "page " << std::hex << p;
    }
  }
}

}  // namespace wpckpt::image::test
