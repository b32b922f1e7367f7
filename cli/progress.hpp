// A progress bar on stderr, drawn only when stderr is a terminal, the user did
// not ask for --json or -q, and the work has already taken more than a second.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/base/progress.hpp"

namespace wpckpt::cli {

class ProgressBar {
 public:
  explicit ProgressBar(bool allowed);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(std::string_view phase, uint64_t done, uint64_t total);
  void finish();  // erase the bar
  // A ProgressFn that feeds this bar (the bar must outlive it).
  ProgressFn callback();

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace wpckpt::cli
