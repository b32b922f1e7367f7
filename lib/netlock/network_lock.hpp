// CRIU's --network-lock (nftables): from the moment a dump reads an
// established TCP connection until its restore, the packets of that
// connection are dropped in both directions, in the dumped process's
// network namespace. The peer then sees a pause and retransmits; without
// the lock, a packet arriving while the socket does not exist is answered
// with a reset, and data arriving between the dump's read of the receive
// queue and the kill would be acknowledged by the kernel and lost.
//
// The rules live in one nftables table per dumped process,
// `inet wpckpt_lock_PID`: the dump adds a rule pair per connection before it
// reads the socket, removes the table again when the process runs on
// (failed dump, --leave-running), and leaves it when the process is killed;
// `wpckpt restore` of that image removes it once the restored process runs
// (`nft delete table inet wpckpt_lock_PID` by hand when the image is never
// restored). Needs CAP_NET_ADMIN, as TCP repair does.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <memory>
#include <string>

#include "lib/base/result.hpp"

struct nft_ctx;

namespace wpckpt::netlock {

// The table of the dumped process `pid`.
std::string table_name(pid_t pid);

class NetworkLock {
 public:
  // Locks nothing until add(); `pid` names the table and its network namespace.
  explicit NetworkLock(pid_t pid);
  NetworkLock(NetworkLock&&) noexcept;
  NetworkLock& operator=(NetworkLock&&) noexcept;
  ~NetworkLock();

  // Drops the packets between `local` and `peer` (both AF_INET or AF_INET6,
  // as getsockname/getpeername return them) from now on.
  Result<void> add(const sockaddr_storage& local, const sockaddr_storage& peer);
  // The process runs on: its connections flow again (the table is deleted).
  void release();
  // The process was killed: the lock stays for the restore to remove.
  void disarm();

 private:
  Result<void> run(const std::string& commands);

  pid_t pid_;
  bool locked_ = false;  // the table exists and is ours to remove
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx_;
};

// `check`: whether this process could lock connections here (a dry run of
// the table the lock makes: nothing is added).
Result<void> probe();

// Restore: removes the lock a dump of `dumped_pid` left in this network
// namespace; false when there was none (--network-lock skip, or removed).
Result<bool> unlock(pid_t dumped_pid);

}  // namespace wpckpt::netlock
