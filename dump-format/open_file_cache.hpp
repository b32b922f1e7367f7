// A few open files, reopened on demand: a chain may have up to 100,000
// images, far more than a process may keep open (often 1024, sometimes 32),
// so a reader keeps only the most recently used data files open. Thread
// safe; a file handed out stays open while its user holds it, even if the
// cache has let it go meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::image {

class OpenFileCache {
 public:
  using Opener = std::function<Result<UniqueFd>()>;

  explicit OpenFileCache(size_t capacity = default_capacity());
  // A sixteenth of the soft RLIMIT_NOFILE, between 2 and 16: a reader leaves
  // most descriptors to the rest of the program (a pre-dump also holds the
  // writer's files, the target's uffd, and a second view of its parent).
  static size_t default_capacity();

  // The file of `key`, opened by `open` unless it is still cached.
  Result<std::shared_ptr<const UniqueFd>> get(size_t key, const Opener& open);
  size_t capacity() const { return capacity_; }

 private:
  struct Entry {
    size_t key = 0;
    std::shared_ptr<const UniqueFd> fd;
    uint64_t last_use = 0;
  };
  std::mutex mu_;
  std::vector<Entry> entries_;  // at most capacity_, searched linearly (it is small)
  uint64_t clock_ = 0;
  size_t capacity_;
};

}  // namespace wpckpt::image
