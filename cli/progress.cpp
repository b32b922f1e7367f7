#include "cli/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace wpckpt::cli {

using Clock = std::chrono::steady_clock;

ProgressBar::ProgressBar(bool allowed)
    : enabled_(allowed && isatty(STDERR_FILENO)), start_(Clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(std::string_view phase, uint64_t done, uint64_t total) {
  if (!enabled_) return;
  auto now = Clock::now();
  if (now - start_ < std::chrono::seconds(1)) return;
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  int filled = total ? static_cast<int>(kWidth * (done > total ? total : done) / total) : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  unsigned pct = total ? static_cast<unsigned>(100 * (done > total ? total : done) / total) : 0;
  std::fprintf(stderr, "\r\033[K%-12.*s [%s] %3u%%", static_cast<int>(phase.size()), phase.data(), bar.c_str(), pct);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

ProgressFn ProgressBar::callback() {
  return [this](std::string_view phase, uint64_t done, uint64_t total) { update(phase, done, total); };
}

}  // namespace wpckpt::cli
