// Unix sockets (stream, datagram, seqpacket): pairs whose two ends are both
// in the process (socketpair, or a connection accepted from the process's
// own listener) with the bytes or messages queued at each end, an end whose
// peer was closed (its data, then EOF), listening sockets by path or
// abstract name with their backlog, bound or unbound unconnected sockets,
// and (--ext-unix-sk) datagram sockets connected to a name outside the
// process, connected to that name again at restore.
//
// Refused at dump, naming the descriptor: a connection to a process outside
// (it cannot be re-established from one side), a listener with connections
// waiting to be accepted, datagrams queued from senders outside (their
// addresses could not be reproduced), descriptors in flight (SCM_RIGHTS).
// Not kept: the names a pair's ends had (a pair comes back unnamed) and the
// credentials a peer passed (SO_PEERCRED of a restored pair is wpckpt's).
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>

#include "lib/base/parse_number.hpp"
#include "lib/fds/fd_handler.hpp"
#include "lib/fds/socket_common.hpp"
#include "lib/fds/unix_diag.hpp"

namespace wpckpt::fds {
namespace {

Error refuse(const FdSource& src, const std::string& what, const std::string& hint) {
  return make_error(EOPNOTSUPP, "dump", fmt::format("fd {} of process {} is {}", src.fd, src.pid, what)).with_hint(hint);
}

const char* type_name(int type) {
  return type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : type == SOCK_SEQPACKET ? "seqpacket" : "?";
}

SocketAddress name_address(const std::string& name) {
  SocketAddress a;
  if (name.empty() || name.size() >= sizeof(sockaddr_un::sun_path)) return a;
  auto& un = reinterpret_cast<sockaddr_un&>(a.addr);
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, name.data(), name.size());
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '\0' ? 0 : 1));
  return a;
}

std::string describe_name(const std::string& name) { return describe_address(name_address(name)); }

// Does the process hold the socket with this inode on some descriptor?
bool process_holds(pid_t pid, uint32_t ino) {
  std::string want = fmt::format("socket:[{}]", ino);
  for (const auto& entry : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), std::filesystem::directory_options::skip_permission_denied)) {
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec).string() == want) return true;
  }
  return false;
}

struct Queued {
  std::vector<uint8_t> bytes;
  std::vector<uint32_t> sizes;  // per message (datagram, seqpacket); one entry per read for a stream
};

// The receive queue, read without consuming it: MSG_PEEK from a peek offset
// (SO_PEEK_OFF, restored afterwards). SO_PASSCRED is off meanwhile so that a
// truncated control message can only mean descriptors in flight.
Result<Queued> peek_queue(const FdSource& src, int sock) {
  WPCKPT_TRY_ASSIGN(int old_peek, socket_int_option(sock, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF"));
  WPCKPT_TRY_ASSIGN(int old_cred, socket_int_option(sock, SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED"));
  int zero = 0;
  if (::setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &zero, sizeof zero) != 0 ||
      ::setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) != 0)
    return errno_error("setsockopt(SO_PEEK_OFF)", "peek the queue of fd " + std::to_string(src.fd));
  Queued q;
  // Not zero-filled: only what the kernel copies in is touched (a fresh page
  // costs ~10 us here, and this runs while the process is frozen).
  constexpr size_t kPeekBytes = 1 << 20;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kPeekBytes]);
  Result<void> status = ok();
  for (;;) {
    iovec iov{buf.get(), kPeekBytes};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = ::recvmsg(sock, &msg, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN) status = errno_error("recvmsg(MSG_PEEK)", "fd " + std::to_string(src.fd));
      break;
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      status = refuse(src, "a unix socket with descriptors in flight (SCM_RIGHTS) in its queue",
                      "descriptors passed between processes cannot be saved: dump again once they were received");
      break;
    }
    if (msg.msg_flags & MSG_TRUNC) {
      status = refuse(src, "a unix socket with a message over 1 MiB queued", "dump again once it was read");
      break;
    }
    if (n == 0) break;  // a stream at its end (the peer closed), or an empty message: nothing more to keep
    q.bytes.insert(q.bytes.end(), buf.get(), buf.get() + n);
    q.sizes.push_back(static_cast<uint32_t>(n));
  }
  ::setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &old_peek, sizeof old_peek);
  ::setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &old_cred, sizeof old_cred);
  if (!status) return std::move(status).error();
  return q;
}

void record_name(const UnixSocketInfo& d, state::FdState& f) {
  SocketAddress a = name_address(d.name);
  f.details["name"] = address_to_json(a.addr, a.len);
  if (d.has_vfs) {
    // sock_diag gives the kernel's device encoding (20-bit minor).
    f.details["name_dev"] = static_cast<uint64_t>(makedev(d.vfs_dev >> 20, d.vfs_dev & 0xfffff));
    f.details["name_ino"] = d.vfs_ino;
  }
}

Result<void> capture_connected(const FdSource& src, int sock, const UnixSocketInfo& d, uint32_t ino, state::FdState& f) {
  bool stream_like = d.type != SOCK_DGRAM;
  bool peer_here = d.peer_ino != 0 && process_holds(src.pid, d.peer_ino);
  if (src.options && d.peer_ino != 0)
    for (pid_t member : src.options->tree_pids) peer_here = peer_here || process_holds(member, d.peer_ino);
  bool peer_gone = stream_like && (d.shutdown & 1) && !peer_here;  // the peer closed its end
  if (peer_here || peer_gone) {
    f.details["state"] = "pair";
    f.details["ino"] = ino;
    f.details["peer_ino"] = peer_here ? d.peer_ino : 0;
    WPCKPT_TRY_ASSIGN(Queued q, peek_queue(src, sock));
    f.details["queued"] = state::to_hex(q.bytes);
    f.details["message_sizes"] = q.sizes;
    return ok();
  }
  std::string peer_name;
  if (d.peer_ino != 0) {
    if (auto p = query_unix_socket(d.peer_ino)) peer_name = p->name;
  }
  std::string what = fmt::format("a unix {} socket connected to {} outside the process", type_name(d.type),
                                 peer_name.empty() ? "an unnamed socket" : describe_name(peer_name));
  if (d.type != SOCK_DGRAM || peer_name.empty())
    return refuse(src, what, "a connection to another process cannot be re-established from one side: close it, "
                             "or checkpoint without it");
  if (!src.options || !src.options->ext_unix_sk)
    return refuse(src, what, "pass --ext-unix-sk to connect it to that name again at restore");
  f.details["state"] = "connected";
  SocketAddress a = name_address(peer_name);
  f.details["peer"] = address_to_json(a.addr, a.len);
  if (d.rqueue > 0)
    return refuse(src, what + " with datagrams queued", "their senders could not be reproduced: dump again once they were read");
  return ok();
}

class UnixSocketHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar&) const override {
    auto ino = parse_number<uint32_t>(src.link.substr(8, src.link.size() - 9));  // socket:[N]
    if (!ino) return make_error(EINVAL, "dump", "fd " + std::to_string(src.fd) + " links to " + src.link);
    WPCKPT_TRY_ASSIGN(UnixSocketInfo d, query_unix_socket(*ino));
    f.details["type"] = type_name(d.type);
    record_name(d, f);
    WPCKPT_TRY_ASSIGN(f.details["options"], changed_options(src.copy.get(), AF_UNIX, d.type, 0));
    if (d.state == TCP_LISTEN) {
      if (d.rqueue > 0)
        return refuse(src, fmt::format("a unix socket listening on {} with {} connection(s) waiting to be accepted",
                                       describe_name(d.name), d.rqueue),
                      "they cannot be moved into a restored process: dump again once the program has accepted them");
      f.details["state"] = "listen";
      f.details["backlog"] = d.wqueue;
      return ok();
    }
    if (d.state == TCP_ESTABLISHED) return capture_connected(src, src.copy.get(), d, *ino, f);
    if (d.rqueue > 0 && d.type == SOCK_DGRAM)
      return refuse(src, fmt::format("a unix datagram socket on {} with datagrams queued", describe_name(d.name)),
                    "their senders could not be reproduced: dump again once they were read");
    f.details["state"] = "unconnected";
    return ok();
  }

  // Both ends of a pair are one object, keyed by the smaller inode (as a pipe by its inode).
  Result<uint64_t> object_key(const state::FdState& f) const override {
    std::string st;
    uint64_t ino = 0, peer = 0;
    WPCKPT_TRY(detail(f, "state", st));
    if (st != "pair") return f.object_id;
    WPCKPT_TRY(detail(f, "ino", ino));
    WPCKPT_TRY(detail(f, "peer_ino", peer));
    return peer != 0 ? std::min(ino, peer) : ino;
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader&, FdObject& o) const override {
    const std::string where = "fd " + std::to_string(f.fd) + " details";
    SocketPlan& p = o.socket;
    std::string type, st;
    WPCKPT_TRY(detail(f, "type", type));
    WPCKPT_TRY(detail(f, "state", st));
    p.family = AF_UNIX;
    p.type = type == "stream" ? SOCK_STREAM : type == "dgram" ? SOCK_DGRAM : type == "seqpacket" ? SOCK_SEQPACKET : -1;
    if (p.type < 0) return state::field_error(where + ".type", "must be stream, dgram or seqpacket");
    WPCKPT_TRY(address_from_json(f.details.value("name", nlohmann::json::object()), AF_UNIX, p.local, where + ".name"));
    WPCKPT_TRY(options_from_json(f.details.value("options", nlohmann::json()), p.options, where + ".options"));
    uint64_t dev = 0, ino = 0;
    WPCKPT_TRY(detail(f, "name_dev", dev));
    WPCKPT_TRY(detail(f, "name_ino", ino));
    p.name_dev = static_cast<dev_t>(dev);
    p.name_ino = static_cast<ino_t>(ino);
    if (st == "listen") {
      if (p.type == SOCK_DGRAM || p.local.len == 0) return state::field_error(where + ".state", "listen needs a named stream or seqpacket socket");
      p.listen = true;
      WPCKPT_TRY(detail(f, "backlog", p.backlog));
    } else if (st == "connected") {
      WPCKPT_TRY(address_from_json(f.details.value("peer", nlohmann::json::object()), AF_UNIX, p.peer, where + ".peer"));
      if (p.type != SOCK_DGRAM || p.peer.len == 0) return state::field_error(where + ".state", "connected needs a datagram socket with a peer name");
      p.connect = true;
    } else if (st == "pair") {
      p.pair = true;
      p.local = SocketAddress{};
      uint64_t peer = 0;
      WPCKPT_TRY(detail(f, "peer_ino", peer));
      p.peer_closed = peer == 0;
    } else if (st != "unconnected") {
      return state::field_error(where + ".state", "must be listen, connected, pair or unconnected");
    }
    o.flags = f.flags & O_NONBLOCK;
    return ok();
  }

  // Each end of a pair: its side and the data queued to it.
  Result<void> add(const state::FdState& f, FdObject& o, FdTarget& t) const override {
    if (!o.socket.pair) return ok();
    uint64_t ino = 0, peer = 0;
    WPCKPT_TRY(detail(f, "ino", ino));
    WPCKPT_TRY(detail(f, "peer_ino", peer));
    t.end = (peer != 0 && ino > peer) ? 1 : 0;
    o.socket.end_nonblock[t.end] = (f.flags & O_NONBLOCK) != 0;
    WPCKPT_TRY(options_from_json(f.details.value("options", nlohmann::json()), o.socket.end_options[t.end],
                                 "fd " + std::to_string(f.fd) + " details.options"));
    WPCKPT_TRY(detail(f, "queued", o.socket.queued[t.end]));
    WPCKPT_TRY(detail(f, "message_sizes", o.socket.message_sizes[t.end]));
    uint64_t total = 0;
    for (uint32_t s : o.socket.message_sizes[t.end]) total += s;
    if (total != o.socket.queued[t.end].size())
      return state::field_error("fd " + std::to_string(f.fd) + " details.message_sizes", "do not add up to the queued bytes");
    return ok();
  }

  Result<void> prepare(FdObject& o, std::vector<UniqueFd>& held, int floor) const override {
    const SocketPlan& p = o.socket;
    const std::string what = fmt::format("fd {}: unix socket {}", o.first_fd, describe_address(p.local));
    if (p.pair) return prepare_pair(o, held, floor, what);
    UniqueFd sock(::socket(AF_UNIX, p.type | SOCK_CLOEXEC, 0));
    if (!sock) return errno_error("socket", what);
    WPCKPT_TRY(apply_options(sock.get(), p.options, what));
    if (p.local.len != 0) WPCKPT_TRY(bind_name(sock.get(), p, what));
    if (p.listen && ::listen(sock.get(), p.backlog) != 0) return errno_error("listen", what);
    if (p.connect && ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&p.peer.addr), p.peer.len) != 0)
      return errno_error("connect", what + " to " + describe_address(p.peer))
          .with_hint("the socket it was connected to (--ext-unix-sk) must exist again before the restore");
    WPCKPT_TRY(set_nonblock_as_dumped(sock.get(), o.flags, what));
    WPCKPT_TRY_ASSIGN(o.inherit_fd, hold_above(std::move(sock), floor, held, what));
    return ok();
  }

  int32_t create(FdObject&) const override {
    errno = EINVAL;  // created by prepare(): the child only duplicates it
    return kStepSocket;
  }

 private:
  // A path still names the dumped process's socket file: it is replaced if
  // it is that file and nothing answers on it; anything else is refused.
  static Result<void> bind_name(int sock, const SocketPlan& p, const std::string& what) {
    const auto& un = reinterpret_cast<const sockaddr_un&>(p.local.addr);
    if (un.sun_path[0] != '\0') {
      struct stat st{};
      if (::lstat(un.sun_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode) || st.st_dev != p.name_dev || st.st_ino != p.name_ino)
          return make_error(EEXIST, "bind", what)
              .with_hint("the path is no longer the socket file the process had bound: remove it, or restore elsewhere");
        UniqueFd probe(::socket(AF_UNIX, p.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&p.local.addr), p.local.len) == 0)
          return make_error(EADDRINUSE, "bind", what).with_hint("a process still listens there (is the dumped process still running?)");
        if (::unlink(un.sun_path) != 0) return errno_error("unlink stale socket file", what);
      }
    }
    if (::bind(sock, reinterpret_cast<const sockaddr*>(&p.local.addr), p.local.len) != 0)
      return errno_error("bind", what);
    return ok();
  }

  // Each end's queue is refilled by sending from the other end.
  static Result<void> prepare_pair(FdObject& o, std::vector<UniqueFd>& held, int floor, const std::string& what) {
    const SocketPlan& p = o.socket;
    int sv[2];
    if (::socketpair(AF_UNIX, p.type | SOCK_CLOEXEC, 0, sv) != 0) return errno_error("socketpair", what);
    UniqueFd ends[2] = {UniqueFd(sv[0]), UniqueFd(sv[1])};
    for (int e = 0; e < 2; ++e) WPCKPT_TRY(apply_options(ends[e].get(), p.end_options[e], what));
    for (int e = 0; e < 2; ++e) {
      size_t off = 0;
      for (uint32_t size : p.message_sizes[e]) {
        ssize_t n = ::send(ends[1 - e].get(), p.queued[e].data() + off, size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n != static_cast<ssize_t>(size)) return errno_error("re-queue data", what);
        off += size;
      }
    }
    WPCKPT_TRY(set_nonblock_as_dumped(ends[0].get(), p.end_nonblock[0] ? O_NONBLOCK : 0, what));
    WPCKPT_TRY_ASSIGN(o.inherit_fd, hold_above(std::move(ends[0]), floor, held, what));
    if (p.peer_closed) return ok();  // end 1 closes here: end 0 reads its data, then EOF
    WPCKPT_TRY(set_nonblock_as_dumped(ends[1].get(), p.end_nonblock[1] ? O_NONBLOCK : 0, what));
    WPCKPT_TRY_ASSIGN(o.inherit_fd_end1, hold_above(std::move(ends[1]), floor, held, what));
    return ok();
  }
};

constinit const UnixSocketHandler kUnixSocket;

}  // namespace

const FdHandler& unix_socket_handler() { return kUnixSocket; }

}  // namespace wpckpt::fds
