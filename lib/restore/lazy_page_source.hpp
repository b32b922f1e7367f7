// Where the pager of a lazy restore gets page contents: "give me the bytes
// of this run of pages" and "every run once, hottest first". The local image
// chain is the first implementation; a page server connection can implement
// the same interface later without the pager changing.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "dump-format/image.hpp"
#include "lib/base/result.hpp"

namespace wpckpt::restore {

class LazyPageSource {
 public:
  virtual ~LazyPageSource() = default;
  // Bytes of [addr, addr + out.size()) as of the image (addresses of the
  // image, page aligned): zeros where the image has none.
  virtual Result<void> read(uint64_t addr, std::span<std::byte> out) = 0;
  // Every page of the lazy memory exactly once, as runs: fn(addr, data, 0)
  // for stored bytes, fn(addr, {}, n) for n zero pages. The order is the
  // source's: the most recently written pages first when it knows them.
  using RunFn = std::function<Result<void>(uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages)>;
  virtual Result<void> for_each_run(const RunFn& fn) = 0;
};

// The local chain. FramesOnce order reads each frame once, the newest
// image's frames first (its pages were written last: the hottest).
class ChainPageSource final : public LazyPageSource {
 public:
  explicit ChainPageSource(const image::ImageChain& chain) : chain_(chain) {}
  Result<void> read(uint64_t addr, std::span<std::byte> out) override { return chain_.read(addr, out); }
  Result<void> for_each_run(const RunFn& fn) override {
    return chain_.for_each_run(fn, {}, image::ImageChain::RunOrder::FramesOnce);
  }

 private:
  const image::ImageChain& chain_;
};

}  // namespace wpckpt::restore
