#include "lib/state/fd_kind.hpp"

#include <array>

namespace wpckpt::state {
namespace {

constexpr std::array<const char*, kFdKindCount> kNames = {
    "file", "dir", "devnull", "tty", "chardev", "fifo", "pipe", "eventfd", "epoll", "signalfd", "timerfd", "memfd",
    "inet_socket", "unix_socket", "inotify"};

}  // namespace

const char* fd_kind_name(FdKind kind) {
  auto i = static_cast<size_t>(kind);
  return i < kNames.size() ? kNames[i] : "unknown";
}

std::optional<FdKind> fd_kind_from_name(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i)
    if (name == kNames[i]) return static_cast<FdKind>(i);
  return std::nullopt;
}

}  // namespace wpckpt::state
