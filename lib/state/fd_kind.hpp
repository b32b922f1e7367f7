// The kinds of file descriptor a dump records and a restore re-creates. The
// names are process.json's (`fds[].kind`); this is the one place that maps
// them. Values are never renumbered (they are not stored, but tests and
// tables index by them).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace wpckpt::state {

enum class FdKind : uint8_t {
  File,      // a regular file (or block device) by its path
  Dir,       // a directory
  DevNull,   // /dev/null
  Tty,       // a terminal or pseudo-terminal
  CharDev,   // another character device
  Fifo,      // a named pipe
  Pipe,      // an anonymous pipe (both ends are one object)
  Eventfd,
  Epoll,
  Signalfd,
  Timerfd,
  Memfd,
  InetSocket,  // TCP or UDP over IPv4/IPv6 (lib/fds/inet_socket_fd.cpp)
  UnixSocket,  // AF_UNIX stream, datagram or seqpacket (lib/fds/unix_socket_fd.cpp)
  Inotify,     // its watches (lib/fds/inotify_fd.cpp)
};
inline constexpr int kFdKindCount = 15;

const char* fd_kind_name(FdKind kind);
std::optional<FdKind> fd_kind_from_name(std::string_view name);

}  // namespace wpckpt::state
