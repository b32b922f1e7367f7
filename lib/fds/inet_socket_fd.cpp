// TCP and UDP sockets over IPv4 and IPv6: unbound, bound, listening (with
// its backlog), connected UDP, and established TCP connections with
// --tcp-established (tcp_repair.cpp). Read at dump from a copy of the
// socket (pidfd_getfd); re-created at restore by prepare() as the image's
// owner (socket_common.hpp).
//
// Refused at dump, naming the descriptor: other protocols (raw, SCTP,
// UDP-Lite), TCP in a state between connected and closed (SYN_SENT,
// FIN_WAIT, CLOSE_WAIT, ...), a listening socket with connections waiting
// to be accepted (they cannot be moved: retry the dump), an established
// connection without --tcp-established, and an attached socket filter.
// Left out by design and said in the dump's output: datagrams queued on a
// UDP socket (the network may drop datagrams; the peers' addresses could
// not be reproduced).
#include <fcntl.h>
#include <fmt/core.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fstream>

#include "lib/fds/fd_handler.hpp"
#include "lib/fds/socket_common.hpp"
#include "lib/fds/tcp_repair.hpp"

namespace wpckpt::fds {
namespace {

const char* tcp_state_name(int state) {
  static const char* names[] = {"?",         "ESTABLISHED", "SYN_SENT", "SYN_RECV",   "FIN_WAIT1", "FIN_WAIT2",
                                "TIME_WAIT", "CLOSE",       "CLOSE_WAIT", "LAST_ACK", "LISTEN",    "CLOSING"};
  return state >= 0 && state < 12 ? names[state] : "?";
}

Error refuse(const FdSource& src, const std::string& what, const std::string& hint) {
  return make_error(EOPNOTSUPP, "dump", fmt::format("fd {} of process {} is {}", src.fd, src.pid, what)).with_hint(hint);
}

struct Names {
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof(sockaddr_storage), peer_len = sizeof(sockaddr_storage);
};

Result<Names> names_of(int sock) {
  Names n;
  if (::getsockname(sock, reinterpret_cast<sockaddr*>(&n.local), &n.local_len) != 0) return errno_error("getsockname");
  if (::getpeername(sock, reinterpret_cast<sockaddr*>(&n.peer), &n.peer_len) != 0) {
    if (errno != ENOTCONN) return errno_error("getpeername");
    n.peer_len = 0;
  }
  return n;
}

std::string endpoint(const sockaddr_storage& a, socklen_t len) {
  SocketAddress s{a, len};
  return describe_address(s);
}

// Listening, closed or established: what a TCP socket records, or why not.
Result<void> capture_tcp_state(const FdSource& src, int sock, const Names& n, state::FdState& f,
                               netlock::NetworkLock& lock) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(sock, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return errno_error("getsockopt(TCP_INFO)");
  std::string where = "a TCP socket on " + endpoint(n.local, n.local_len);
  switch (info.tcpi_state) {
    case TCP_LISTEN:
      // For a listener TCP_INFO reports the backlog in tcpi_sacked and the
      // connections waiting to be accepted in tcpi_unacked (tcp_get_info).
      if (info.tcpi_unacked > 0)
        return refuse(src, fmt::format("a TCP socket listening on {} with {} connection(s) waiting to be accepted",
                                       endpoint(n.local, n.local_len), info.tcpi_unacked),
                      "they cannot be moved into a restored process: dump again once the program has accepted them");
      f.details["state"] = "listen";
      f.details["backlog"] = info.tcpi_sacked;
      return ok();
    case TCP_CLOSE:
      f.details["state"] = "closed";
      return ok();
    case TCP_ESTABLISHED:
      if (!src.options || !src.options->tcp_established)
        return refuse(src, fmt::format("an established TCP connection {} -> {}", endpoint(n.local, n.local_len),
                                       endpoint(n.peer, n.peer_len)),
                      src.options && src.options->snapshot
                          ? "a snapshot leaves the process running, and TCP repair cannot take the connections of "
                            "a running process: close them first, or take `wpckpt dump -R --tcp-established` "
                            "(frozen for the whole dump)"
                          : "pass --tcp-established to dump it with TCP repair (and to restore it), or close it "
                            "first");
      f.details["state"] = "established";
      // Locked before its queues are read: nothing arrives (and is
      // acknowledged) after the read, and the peer never sees a reset.
      if (src.options->network_lock) WPCKPT_TRY(lock.add(n.local, n.peer));
      return capture_tcp_repair(sock, f.details["repair"]);
    default:
      return refuse(src, fmt::format("{} in state {}", where, tcp_state_name(info.tcpi_state)),
                    "only listening, closed and (with --tcp-established) established TCP sockets can be dumped: "
                    "dump again once the connection has finished opening or closing");
  }
}

Result<void> refuse_filters(const FdSource& src, int sock) {
  socklen_t len = 0;  // SO_GET_FILTER with no buffer: the length of a classic filter
  if (::getsockopt(sock, SOL_SOCKET, SO_GET_FILTER, nullptr, &len) == 0 && len > 0)
    return refuse(src, "a socket with a socket filter attached", "socket filters are not saved: detach it first");
  return ok();
}

int unprivileged_port_start() {
  std::ifstream in("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  int v = 1024;
  in >> v;
  return v;
}

class InetSocketHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar& so_far) const override {
    const int s = src.copy.get();
    WPCKPT_TRY_ASSIGN(int family, socket_int_option(s, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN"));
    WPCKPT_TRY_ASSIGN(int type, socket_int_option(s, SOL_SOCKET, SO_TYPE, "SO_TYPE"));
    WPCKPT_TRY_ASSIGN(int protocol, socket_int_option(s, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL"));
    bool tcp = type == SOCK_STREAM && protocol == IPPROTO_TCP;
    bool udp = type == SOCK_DGRAM && protocol == IPPROTO_UDP;
    if (!tcp && !udp)
      return refuse(src, fmt::format("an inet socket of type {} protocol {}", type, protocol),
                    "only TCP and UDP sockets can be dumped: close it first");
    WPCKPT_TRY(refuse_filters(src, s));
    WPCKPT_TRY_ASSIGN(Names n, names_of(s));
    f.details["family"] = family == AF_INET6 ? "inet6" : "inet";
    f.details["protocol"] = tcp ? "tcp" : "udp";
    f.details["local"] = address_to_json(n.local, n.local_len);
    f.details["peer"] = address_to_json(n.peer, n.peer_len);
    if (tcp) {
      WPCKPT_TRY(capture_tcp_state(src, s, n, f, so_far.network_lock));
    } else {
      f.details["state"] = n.peer_len ? "connected" : "closed";
      int queued = 0;
      if (::ioctl(s, FIONREAD, &queued) == 0 && queued > 0)
        so_far.warnings.push_back(fmt::format("fd {}: datagrams queued on the UDP socket on {} are not saved",
                                              src.fd, endpoint(n.local, n.local_len)));
    }
    WPCKPT_TRY_ASSIGN(nlohmann::json options, changed_options(s, family, type, protocol));
    if (f.details["state"] == "established") {
      // An established connection's buffers are sized by the kernel as it
      // runs (autotuning); setting them would fix them for good.
      nlohmann::json kept = nlohmann::json::array();
      for (const auto& o : options)
        if (!(o[0] == SOL_SOCKET && (o[1] == SO_RCVBUF || o[1] == SO_SNDBUF))) kept.push_back(o);
      options = std::move(kept);
      UniqueFd kept_copy(::fcntl(s, F_DUPFD_CLOEXEC, 0));
      if (!kept_copy) return errno_error("dup", fmt::format("socket fd {} of process {}", src.fd, src.pid));
      so_far.repaired.add(std::move(kept_copy));  // in repair mode until the process is gone (tcp_repair.hpp)
    }
    f.details["options"] = std::move(options);
    WPCKPT_TRY_ASSIGN(std::string device, bound_device(s));
    if (!device.empty()) f.details["device"] = device;
    return ok();
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader&, FdObject& o) const override {
    const std::string where = "fd " + std::to_string(f.fd) + " details";
    std::string family, protocol, st;
    WPCKPT_TRY(detail(f, "family", family));
    WPCKPT_TRY(detail(f, "protocol", protocol));
    WPCKPT_TRY(detail(f, "state", st));
    SocketPlan& p = o.socket;
    if (family != "inet" && family != "inet6") return state::field_error(where + ".family", "must be inet or inet6");
    p.family = family == "inet" ? AF_INET : AF_INET6;
    if (protocol != "tcp" && protocol != "udp") return state::field_error(where + ".protocol", "must be tcp or udp");
    p.type = protocol == "tcp" ? SOCK_STREAM : SOCK_DGRAM;
    p.protocol = protocol == "tcp" ? IPPROTO_TCP : IPPROTO_UDP;
    WPCKPT_TRY(address_from_json(f.details.value("local", nlohmann::json::object()), p.family, p.local, where + ".local"));
    WPCKPT_TRY(address_from_json(f.details.value("peer", nlohmann::json::object()), p.family, p.peer, where + ".peer"));
    WPCKPT_TRY(options_from_json(f.details.value("options", nlohmann::json()), p.options, where + ".options"));
    WPCKPT_TRY(detail(f, "device", p.device));
    if (p.device.size() >= IFNAMSIZ || p.device.find_first_of("/: ") != std::string::npos)
      return state::field_error(where + ".device", "is not a network interface name");
    if (st == "listen") {
      if (p.type != SOCK_STREAM) return state::field_error(where + ".state", "is listen for a UDP socket");
      p.listen = true;
      WPCKPT_TRY(detail(f, "backlog", p.backlog));
    } else if (st == "connected") {
      if (p.type != SOCK_DGRAM || p.peer.len == 0) return state::field_error(where + ".state", "connected needs a UDP socket with a peer");
      p.connect = true;
    } else if (st == "established") {
      if (p.type != SOCK_STREAM || p.peer.len == 0) return state::field_error(where + ".state", "established needs a TCP socket with a peer");
      WPCKPT_TRY(plan_tcp_repair(f.details.value("repair", nlohmann::json()), where + ".repair", o.tcp));
      o.tcp.wanted = true;
    } else if (st != "closed") {
      return state::field_error(where + ".state", "must be listen, closed, connected or established");
    }
    o.flags = f.flags & O_NONBLOCK;
    return ok();
  }

  Result<void> prepare(FdObject& o, std::vector<UniqueFd>& held, int floor) const override {
    const SocketPlan& p = o.socket;
    const std::string what = fmt::format("fd {}: socket on {}", o.first_fd, describe_address(p.local));
    WPCKPT_TRY(check_privileges(p, what));
    UniqueFd sock(::socket(p.family, p.type | SOCK_CLOEXEC, p.protocol));
    if (!sock) return errno_error("socket", what);
    WPCKPT_TRY(bind_to_device(sock.get(), p.device, what));
    if (o.tcp.wanted) {
      WPCKPT_TRY(restore_tcp_connection(sock.get(), p, o.tcp, what));
    } else {
      WPCKPT_TRY(bind_and_listen(sock.get(), p, what));
    }
    WPCKPT_TRY(set_nonblock_as_dumped(sock.get(), o.flags, what));
    WPCKPT_TRY_ASSIGN(o.inherit_fd, hold_above(std::move(sock), floor, held, what));
    return ok();
  }

  int32_t create(FdObject&) const override {
    errno = EINVAL;  // created by prepare(): the child only duplicates it
    return kStepSocket;
  }

 private:
  static uint16_t port_of(const SocketAddress& a) {
    if (a.len == 0) return 0;
    if (a.addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a.addr).sin_port);
    return ntohs(reinterpret_cast<const sockaddr_in6&>(a.addr).sin6_port);
  }

  static Result<void> check_privileges(const SocketPlan& p, const std::string& what) {
    uint16_t port = port_of(p.local);
    if (port != 0 && port < unprivileged_port_start())
      WPCKPT_TRY(require_root_owner(what, fmt::format("binding port {} needs CAP_NET_BIND_SERVICE", port)));
    for (const auto& opt : p.options)
      if (option_needs_privilege(opt))
        WPCKPT_TRY(require_root_owner(what, fmt::format("socket option {}/{} = {} needs CAP_NET_ADMIN", opt.level, opt.name, opt.value)));
    return ok();
  }

  // Options first (IPV6_V6ONLY, IP_FREEBIND, ... act on bind). A TCP port
  // may still be held by the dumped process's connections in TIME_WAIT, so
  // the bind runs with SO_REUSEADDR and the recorded value is set after it.
  // Not for UDP, where SO_REUSEADDR would let the bind share a port that
  // another process took meanwhile.
  static Result<void> bind_and_listen(int sock, const SocketPlan& p, const std::string& what) {
    WPCKPT_TRY(apply_options(sock, p.options, what));
    if (p.local.len != 0 && port_of(p.local) != 0) {
      int one = 1, recorded = 0;
      bool tcp = p.type == SOCK_STREAM;
      for (const auto& opt : p.options)
        if (opt.level == SOL_SOCKET && opt.name == SO_REUSEADDR) recorded = opt.value;
      if (tcp && ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        return errno_error("setsockopt(SO_REUSEADDR)", what);
      if (::bind(sock, reinterpret_cast<const sockaddr*>(&p.local.addr), p.local.len) != 0)
        return errno_error("bind", what).with_hint(errno == EADDRINUSE
                                                        ? "another socket holds that address now (is the dumped process still running?)"
                                                        : "the address must exist on this machine as it did at dump time");
      if (tcp && ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &recorded, sizeof recorded) != 0)
        return errno_error("setsockopt(SO_REUSEADDR)", what);
    }
    if (p.listen && ::listen(sock, p.backlog) != 0) return errno_error("listen", what);
    if (p.connect && ::connect(sock, reinterpret_cast<const sockaddr*>(&p.peer.addr), p.peer.len) != 0)
      return errno_error("connect", what + " to " + describe_address(p.peer));
    return ok();
  }
};

constinit const InetSocketHandler kInetSocket;

}  // namespace

const FdHandler& inet_socket_handler() { return kInetSocket; }

}  // namespace wpckpt::fds
