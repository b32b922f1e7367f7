// Log levels for the libraries and the CLI (-q, -v, -vv, -v0..-v4). Messages
// go to stderr as "wpckpt: <level>: <text>", or to the file of --log-file.
// The level and the output are process-wide: the one piece of global state we
// keep, set by the CLI at start.
#pragma once

#include <fmt/core.h>

#include <string_view>

namespace wpckpt::log {

enum class Level { Quiet = 0, Error = 1, Warn = 2, Info = 3, Debug = 4, Trace = 5 };

void set_level(Level level);
Level level();
bool enabled(Level level);
void write(Level level, std::string_view text);
// Where messages go (default STDERR_FILENO). The caller keeps `fd` open
// while it is set.
void set_output_fd(int fd);
int output_fd();

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Error)) write(Level::Error, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Warn)) write(Level::Warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Info)) write(Level::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Debug)) write(Level::Debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void trace(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Trace)) write(Level::Trace, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace wpckpt::log
