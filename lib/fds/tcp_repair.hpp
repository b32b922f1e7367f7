// Established TCP connections with TCP repair (--tcp-established), as
// docs/KERNEL.md §14 says: the dump puts the socket (the target's
// own, through a copy) in repair mode and reads its sequence numbers, both
// queues, the negotiated options and the window; a socket in repair mode
// closes without a FIN or a reset, so the peer sees a pause. Restore builds
// a socket in repair mode, binds and "connects" it without a handshake,
// refills the queues and leaves repair mode without a window probe.
// Needs CAP_NET_ADMIN on both sides; restore refuses it for an image that
// root does not own (repair mode sets any sequence numbers towards any peer).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/fds/fd_object.hpp"

namespace wpckpt::fds {

// Dump (the process frozen): leaves the socket in repair mode.
Result<void> capture_tcp_repair(int sock, nlohmann::json& out);
// A dump that does not kill the process (failed, or --leave-running) takes
// the socket out of repair mode again, without a window probe.
void leave_tcp_repair(int sock);

// Copies of the sockets a dump left in repair mode. They leave it when this
// is destroyed or released, unless the dump killed the process (disarm()):
// then they close in repair mode, silently.
class RepairedSockets {
 public:
  RepairedSockets() = default;
  RepairedSockets(RepairedSockets&&) = default;
  RepairedSockets& operator=(RepairedSockets&&) = default;
  ~RepairedSockets() { release(); }
  void add(UniqueFd sock) { socks_.push_back(std::move(sock)); }
  void release() {
    for (auto& s : socks_) leave_tcp_repair(s.get());
    socks_.clear();
  }
  void disarm() { socks_.clear(); }

 private:
  std::vector<UniqueFd> socks_;
};

Result<void> plan_tcp_repair(const nlohmann::json& j, const std::string& where, TcpRepairPlan& out);
// Restore, on a new socket of the plan's family: bound to p.local, connected to p.peer.
Result<void> restore_tcp_connection(int sock, const SocketPlan& p, const TcpRepairPlan& t, const std::string& what);

}  // namespace wpckpt::fds
