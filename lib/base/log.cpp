#include "lib/base/log.hpp"

#include <unistd.h>

#include <atomic>
#include <string>

namespace wpckpt::log {
namespace {
std::atomic<Level> g_level{Level::Warn};
std::atomic<int> g_output_fd{STDERR_FILENO};

const char* level_name(Level level) {
  switch (level) {
    case Level::Error: return "error";
    case Level::Warn: return "warning";
    case Level::Info: return "info";
    case Level::Debug: return "debug";
    case Level::Trace: return "trace";
    case Level::Quiet: break;
  }
  return "";
}
}  // namespace

void set_level(Level level) { g_level.store(level, std::memory_order_relaxed); }
Level level() { return g_level.load(std::memory_order_relaxed); }
void set_output_fd(int fd) { g_output_fd.store(fd, std::memory_order_relaxed); }
int output_fd() { return g_output_fd.load(std::memory_order_relaxed); }
bool enabled(Level l) { return static_cast<int>(l) <= static_cast<int>(level()); }

void write(Level l, std::string_view text) {
  // One write(2) per line so that lines of concurrent threads never interleave.
  std::string line = "wpckpt: ";
  line += level_name(l);
  line += ": ";
  line += text;
  line += '\n';
  ssize_t unused = ::write(output_fd(), line.data(), line.size());
  (void)unused;
}

}  // namespace wpckpt::log
