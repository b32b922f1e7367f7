#include "dump-format/open_file_cache.hpp"

#include <sys/resource.h>

#include <algorithm>

namespace wpckpt::image {

OpenFileCache::OpenFileCache(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {}

size_t OpenFileCache::default_capacity() {
  struct rlimit lim {};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 16;
  return std::clamp<size_t>(static_cast<size_t>(lim.rlim_cur / 16), 2, 16);
}

Result<std::shared_ptr<const UniqueFd>> OpenFileCache::get(size_t key, const Opener& open) {
  std::lock_guard lock(mu_);
  ++clock_;
  for (Entry& e : entries_) {
    if (e.key == key) {
      e.last_use = clock_;
      return e.fd;
    }
  }
  WPCKPT_TRY_ASSIGN(UniqueFd fd, open());
  auto shared = std::make_shared<const UniqueFd>(std::move(fd));
  if (entries_.size() < capacity_) {
    entries_.push_back(Entry{key, shared, clock_});
  } else {
    auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                   [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; });
    *oldest = Entry{key, shared, clock_};
  }
  return shared;
}

}  // namespace wpckpt::image
