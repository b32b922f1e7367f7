#include "lib/fds/unix_diag.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "lib/base/unique_fd.hpp"

namespace wpckpt::fds {
namespace {

void read_attributes(const unix_diag_msg* msg, size_t len, UnixSocketInfo& out) {
  auto* attr = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(msg) + NLMSG_ALIGN(sizeof *msg));
  long left = static_cast<long>(len) - static_cast<long>(NLMSG_ALIGN(sizeof *msg));
  for (; RTA_OK(attr, left); attr = RTA_NEXT(attr, left)) {
    const char* data = static_cast<const char*>(RTA_DATA(attr));
    size_t size = RTA_PAYLOAD(attr);
    switch (attr->rta_type) {
      case UNIX_DIAG_NAME: out.name.assign(data, size); break;
      case UNIX_DIAG_PEER:
        if (size >= sizeof(uint32_t)) std::memcpy(&out.peer_ino, data, sizeof(uint32_t));
        break;
      case UNIX_DIAG_RQLEN:
        if (size >= sizeof(unix_diag_rqlen)) {
          unix_diag_rqlen q{};
          std::memcpy(&q, data, sizeof q);
          out.rqueue = q.udiag_rqueue;
          out.wqueue = q.udiag_wqueue;
        }
        break;
      case UNIX_DIAG_VFS:
        if (size >= sizeof(unix_diag_vfs)) {
          unix_diag_vfs v{};
          std::memcpy(&v, data, sizeof v);
          out.has_vfs = true;
          out.vfs_dev = v.udiag_vfs_dev;
          out.vfs_ino = v.udiag_vfs_ino;
        }
        break;
      case UNIX_DIAG_SHUTDOWN:
        if (size >= 1) out.shutdown = static_cast<uint8_t>(data[0]);
        break;
      default: break;
    }
  }
}

}  // namespace

Result<UnixSocketInfo> query_unix_socket(uint32_t ino) {
  UniqueFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return errno_error("socket(NETLINK_SOCK_DIAG)");
  struct {
    nlmsghdr hdr;
    unix_diag_req req;
  } request{};
  request.hdr.nlmsg_len = sizeof request;
  request.hdr.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.hdr.nlmsg_flags = NLM_F_REQUEST;  // one socket, by inode (no dump)
  request.req.sdiag_family = AF_UNIX;
  request.req.udiag_ino = ino;
  request.req.udiag_states = ~0u;
  request.req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN;
  request.req.udiag_cookie[0] = request.req.udiag_cookie[1] = ~0u;  // INET_DIAG_NOCOOKIE: any
  if (::send(nl.get(), &request, sizeof request, 0) != static_cast<ssize_t>(sizeof request))
    return errno_error("send (sock_diag)", "unix socket " + std::to_string(ino));
  std::vector<char> buf(16384);
  ssize_t n = ::recv(nl.get(), buf.data(), buf.size(), 0);
  if (n < 0) return errno_error("recv (sock_diag)", "unix socket " + std::to_string(ino));
  auto* h = reinterpret_cast<const nlmsghdr*>(buf.data());
  size_t left = static_cast<size_t>(n);
  if (!NLMSG_OK(h, left)) return make_error(EPROTO, "sock_diag", "short answer for unix socket " + std::to_string(ino));
  if (h->nlmsg_type == NLMSG_ERROR) {
    auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
    return make_error(-e->error, "sock_diag", "unix socket " + std::to_string(ino));
  }
  auto* msg = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
  UnixSocketInfo out;
  out.type = msg->udiag_type;
  out.state = msg->udiag_state;
  read_attributes(msg, h->nlmsg_len - NLMSG_HDRLEN, out);
  return out;
}

}  // namespace wpckpt::fds
