#include "lib/fds/tcp_repair.hpp"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <vector>

#include "lib/fds/socket_common.hpp"
#include "lib/state/json_fields.hpp"

namespace wpckpt::fds {
namespace {

Result<void> set_int(int sock, int name, int value, const char* what) {
  if (::setsockopt(sock, IPPROTO_TCP, name, &value, sizeof value) != 0) return errno_error(what);
  return ok();
}

Result<uint32_t> get_u32(int sock, int name, const char* what) {
  uint32_t value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(sock, IPPROTO_TCP, name, &value, &len) != 0) return errno_error(what);
  return value;
}

Result<int> queue_bytes(int sock, unsigned long request, const char* what) {
  int n = 0;
  if (::ioctl(sock, request, &n) != 0) return errno_error(what);
  return n;
}

// The bytes of one queue (TCP_REPAIR_QUEUE selects it), read without consuming them.
Result<std::vector<uint8_t>> peek_queue(int sock, int queue, size_t size, const char* what) {
  WPCKPT_TRY(set_int(sock, TCP_REPAIR_QUEUE, queue, "setsockopt(TCP_REPAIR_QUEUE)"));
  std::vector<uint8_t> data(size);
  if (size == 0) return data;
  ssize_t n = ::recv(sock, data.data(), size, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno_error("recv(MSG_PEEK)", what);
  if (static_cast<size_t>(n) != size)
    return make_error(EIO, "read the TCP queue", std::string(what) + ": " + std::to_string(n) + " of " +
                                                     std::to_string(size) + " bytes");
  return data;
}

Result<void> send_all(int sock, const uint8_t* data, size_t size, const std::string& what) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::send(sock, data + done, size - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("send", what);
    done += static_cast<size_t>(n);
  }
  return ok();
}

Result<void> restore_options(int sock, const TcpRepairPlan& t, const std::string& what) {
  std::vector<tcp_repair_opt> opts;
  opts.push_back({TCPOPT_MAXSEG, t.mss});
  if (t.wscale) opts.push_back({TCPOPT_WINDOW, t.snd_wscale | (t.rcv_wscale << 16)});
  if (t.sack) opts.push_back({TCPOPT_SACK_PERMITTED, 0});
  if (t.timestamps) opts.push_back({TCPOPT_TIMESTAMP, 0});
  if (::setsockopt(sock, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts.data(),
                   static_cast<socklen_t>(opts.size() * sizeof(tcp_repair_opt))) != 0)
    return errno_error("setsockopt(TCP_REPAIR_OPTIONS)", what);
  if (t.timestamps) WPCKPT_TRY(set_int(sock, TCP_TIMESTAMP, static_cast<int>(t.timestamp), "setsockopt(TCP_TIMESTAMP)"));
  return ok();
}

}  // namespace

Result<void> capture_tcp_repair(int sock, nlohmann::json& out) {
  if (auto r = set_int(sock, TCP_REPAIR, TCP_REPAIR_ON, "setsockopt(TCP_REPAIR)"); !r)
    return std::move(r).error().with_hint("dumping an established TCP connection needs CAP_NET_ADMIN");
  WPCKPT_TRY_ASSIGN(int outq, queue_bytes(sock, SIOCOUTQ, "ioctl(SIOCOUTQ)"));
  WPCKPT_TRY_ASSIGN(int unsent, queue_bytes(sock, SIOCOUTQNSD, "ioctl(SIOCOUTQNSD)"));
  WPCKPT_TRY_ASSIGN(int inq, queue_bytes(sock, SIOCINQ, "ioctl(SIOCINQ)"));
  // TCP_QUEUE_SEQ gives the sequence number after each queue (write_seq, rcv_nxt).
  WPCKPT_TRY_ASSIGN(auto send_data, peek_queue(sock, TCP_SEND_QUEUE, static_cast<size_t>(outq), "send queue"));
  WPCKPT_TRY_ASSIGN(uint32_t write_seq, get_u32(sock, TCP_QUEUE_SEQ, "getsockopt(TCP_QUEUE_SEQ)"));
  WPCKPT_TRY_ASSIGN(auto recv_data, peek_queue(sock, TCP_RECV_QUEUE, static_cast<size_t>(inq), "receive queue"));
  WPCKPT_TRY_ASSIGN(uint32_t rcv_nxt, get_u32(sock, TCP_QUEUE_SEQ, "getsockopt(TCP_QUEUE_SEQ)"));
  WPCKPT_TRY(set_int(sock, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "setsockopt(TCP_REPAIR_QUEUE)"));

  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(sock, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return errno_error("getsockopt(TCP_INFO)");
  WPCKPT_TRY_ASSIGN(uint32_t mss, get_u32(sock, TCP_MAXSEG, "getsockopt(TCP_MAXSEG)"));
  tcp_repair_window win{};
  len = sizeof win;
  if (::getsockopt(sock, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, &len) != 0) return errno_error("getsockopt(TCP_REPAIR_WINDOW)");

  out = nlohmann::json::object();
  out["send_seq"] = write_seq - static_cast<uint32_t>(outq);
  out["recv_seq"] = rcv_nxt - static_cast<uint32_t>(inq);
  out["send_queue"] = state::to_hex(send_data);
  out["unsent"] = unsent;
  out["recv_queue"] = state::to_hex(recv_data);
  out["mss"] = mss;
  out["sack"] = (info.tcpi_options & TCPI_OPT_SACK) != 0;
  out["wscale"] = (info.tcpi_options & TCPI_OPT_WSCALE) != 0;
  out["snd_wscale"] = static_cast<unsigned>(info.tcpi_snd_wscale);
  out["rcv_wscale"] = static_cast<unsigned>(info.tcpi_rcv_wscale);
  out["timestamps"] = (info.tcpi_options & TCPI_OPT_TIMESTAMPS) != 0;
  if (info.tcpi_options & TCPI_OPT_TIMESTAMPS) {
    WPCKPT_TRY_ASSIGN(out["timestamp"], get_u32(sock, TCP_TIMESTAMP, "getsockopt(TCP_TIMESTAMP)"));
  }
  out["window"] = {win.snd_wl1, win.snd_wnd, win.max_window, win.rcv_wnd, win.rcv_wup};
  return ok();
}

void leave_tcp_repair(int sock) {
  int off = TCP_REPAIR_OFF_NO_WP;
  ::setsockopt(sock, IPPROTO_TCP, TCP_REPAIR, &off, sizeof off);
}

Result<void> plan_tcp_repair(const nlohmann::json& j, const std::string& where, TcpRepairPlan& t) {
  if (!j.is_object()) return state::field_error(where, "must be an object");
  state::JsonReader r(j, where);
  r.req("send_seq", t.send_seq);
  r.req("recv_seq", t.recv_seq);
  r.req("send_queue", t.send_queue);
  r.req("unsent", t.unsent);
  r.req("recv_queue", t.recv_queue);
  r.req("mss", t.mss);
  r.req("sack", t.sack);
  r.req("wscale", t.wscale);
  r.req("snd_wscale", t.snd_wscale);
  r.req("rcv_wscale", t.rcv_wscale);
  r.req("timestamps", t.timestamps);
  r.opt("timestamp", t.timestamp);
  std::vector<uint32_t> window;
  r.req("window", window);
  WPCKPT_TRY(r.result());
  if (window.size() != 5) return state::field_error(where + ".window", "must have 5 numbers");
  for (size_t i = 0; i < 5; ++i) t.window[i] = window[i];
  if (t.unsent > t.send_queue.size()) return state::field_error(where + ".unsent", "is larger than the send queue");
  if (t.snd_wscale > 14 || t.rcv_wscale > 14) return state::field_error(where, "has a window scale above 14");
  return ok();
}

Result<void> restore_tcp_connection(int sock, const SocketPlan& p, const TcpRepairPlan& t, const std::string& what) {
  WPCKPT_TRY(require_root_owner(what, "TCP repair can set any sequence numbers towards any peer"));
  WPCKPT_TRY(apply_options(sock, p.options, what));
  // Repair mode forces address reuse (SK_FORCE_REUSE): the bind succeeds
  // next to the listener the connection was accepted from. Nothing may set
  // SO_REUSEADDR after it, which would replace that.
  if (auto r = set_int(sock, TCP_REPAIR, TCP_REPAIR_ON, "setsockopt(TCP_REPAIR)"); !r)
    return std::move(r).error().with_hint("restoring an established TCP connection needs CAP_NET_ADMIN");
  if (::bind(sock, reinterpret_cast<const sockaddr*>(&p.local.addr), p.local.len) != 0)
    return errno_error("bind", what).with_hint("another socket holds that address now (is the dumped process still running?)");
  WPCKPT_TRY(set_int(sock, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "setsockopt(TCP_REPAIR_QUEUE)"));
  WPCKPT_TRY(set_int(sock, TCP_QUEUE_SEQ, static_cast<int>(t.send_seq), "setsockopt(TCP_QUEUE_SEQ)"));
  WPCKPT_TRY(set_int(sock, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "setsockopt(TCP_REPAIR_QUEUE)"));
  WPCKPT_TRY(set_int(sock, TCP_QUEUE_SEQ, static_cast<int>(t.recv_seq), "setsockopt(TCP_QUEUE_SEQ)"));
  // In repair mode connect() sends nothing: the socket is established at once.
  if (::connect(sock, reinterpret_cast<const sockaddr*>(&p.peer.addr), p.peer.len) != 0)
    return errno_error("connect (TCP repair)", what + " to " + describe_address(p.peer));
  WPCKPT_TRY(restore_options(sock, t, what));
  // Queued data: the receive queue as received, the send queue as sent
  // (retransmitted if the peer never got it); the unsent tail after repair.
  WPCKPT_TRY(set_int(sock, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "setsockopt(TCP_REPAIR_QUEUE)"));
  WPCKPT_TRY(send_all(sock, t.recv_queue.data(), t.recv_queue.size(), what + " (receive queue)"));
  WPCKPT_TRY(set_int(sock, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "setsockopt(TCP_REPAIR_QUEUE)"));
  const size_t sent = t.send_queue.size() - t.unsent;
  WPCKPT_TRY(send_all(sock, t.send_queue.data(), sent, what + " (send queue)"));
  tcp_repair_window win{t.window[0], t.window[1], t.window[2], t.window[3], t.window[4]};
  if (::setsockopt(sock, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, sizeof win) != 0)
    return errno_error("setsockopt(TCP_REPAIR_WINDOW)", what);
  WPCKPT_TRY(set_int(sock, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "setsockopt(TCP_REPAIR_QUEUE)"));
  // Without a window probe: the other end may not exist yet (both ends of a
  // connection inside the process are restored one after the other, and a
  // probe reaching the listener first would be answered with a reset). The
  // connection resumes with the next segment either side sends; data of the
  // send queue is retransmitted by its timer.
  WPCKPT_TRY(set_int(sock, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP, "setsockopt(TCP_REPAIR, off)"));
  WPCKPT_TRY(send_all(sock, t.send_queue.data() + sent, t.unsent, what + " (unsent data)"));
  int recorded = 0;
  for (const auto& opt : p.options)
    if (opt.level == SOL_SOCKET && opt.name == SO_REUSEADDR) recorded = opt.value;
  if (::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &recorded, sizeof recorded) != 0)
    return errno_error("setsockopt(SO_REUSEADDR)", what);
  return ok();
}

}  // namespace wpckpt::fds
