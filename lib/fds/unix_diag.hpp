// What the kernel says about one unix socket (sock_diag, NETLINK_SOCK_DIAG,
// looked up by inode): its state, bound name, peer, queue lengths, the
// socket file of a bound path and its shutdown state. Nothing else tells a
// socket's peer.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "lib/base/result.hpp"

namespace wpckpt::fds {

struct UnixSocketInfo {
  uint8_t type = 0;    // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  uint8_t state = 0;   // TCP_ESTABLISHED (connected), TCP_LISTEN, TCP_CLOSE
  std::string name;    // as bound: a path, or a leading NUL and an abstract name; empty: unnamed
  uint32_t peer_ino = 0;
  uint32_t rqueue = 0;  // listening: connections waiting; else bytes/messages queued to read
  uint32_t wqueue = 0;  // listening: the backlog
  bool has_vfs = false;
  uint64_t vfs_dev = 0, vfs_ino = 0;  // the socket file of a bound path
  uint8_t shutdown = 0;               // RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2
};

Result<UnixSocketInfo> query_unix_socket(uint32_t ino);

}  // namespace wpckpt::fds
