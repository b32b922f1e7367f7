#include "lib/netlock/network_lock.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/stat.h>

#include <thread>

#include "lib/base/log.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/netlock/nftables_library.hpp"

namespace wpckpt::netlock {
namespace {

// The loaded library, once a context exists (load_nftables() succeeded then).
const NftablesLibrary& nft() { return **load_nftables(); }
void free_context(nft_ctx* ctx) { nft().ctx_free(ctx); }

using CtxPtr = std::unique_ptr<nft_ctx, void (*)(nft_ctx*)>;

Error nft_error(nft_ctx* ctx, const std::string& what) {
  std::string text = nft().ctx_get_error_buffer(ctx);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return make_error(EPERM, "nftables", what + (text.empty() ? "" : ": " + text))
      .with_hint("the network lock needs nftables in the kernel and CAP_NET_ADMIN; "
                 "--network-lock skip dumps without it (peers may then see resets)");
}

// A context whose netlink socket is in the network namespace of `pid`: made
// in a thread that entered that namespace (the socket stays bound to it).
Result<CtxPtr> context_in_netns_of(pid_t pid) {
  const std::string ns_path = fmt::format("/proc/{}/ns/net", pid);
  struct stat theirs{}, ours{};
  if (::stat(ns_path.c_str(), &theirs) != 0) return errno_error("stat", ns_path);
  if (::stat("/proc/self/ns/net", &ours) != 0) return errno_error("stat", "/proc/self/ns/net");
  WPCKPT_TRY_ASSIGN(const NftablesLibrary* lib, load_nftables());
  nft_ctx* made = nullptr;
  if (theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev) {
    made = lib->ctx_new(NFT_CTX_DEFAULT);
  } else {
    UniqueFd ns(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) return errno_error("open", ns_path);
    int err = 0;
    std::thread([&] {
      if (::setns(ns.get(), CLONE_NEWNET) != 0) err = errno;
      else made = lib->ctx_new(NFT_CTX_DEFAULT);
    }).join();
    if (err != 0) return make_error(err, "setns", ns_path);
  }
  if (!made) return make_error(ENOMEM, "nft_ctx_new");
  lib->ctx_buffer_output(made);
  lib->ctx_buffer_error(made);
  return CtxPtr(made, free_context);
}

// nftables' form of an address; an IPv4-mapped IPv6 one travels as IPv4.
struct Endpoint {
  std::string family;  // "ip" or "ip6"
  std::string addr;
  uint16_t port = 0;
};

Result<Endpoint> endpoint_of(const sockaddr_storage& a) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(a);
    ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
    return Endpoint{"ip", text, ntohs(in.sin_port)};
  }
  if (a.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a);
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      ::inet_ntop(AF_INET, &in6.sin6_addr.s6_addr[12], text, sizeof text);
      return Endpoint{"ip", text, ntohs(in6.sin6_port)};
    }
    ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    return Endpoint{"ip6", text, ntohs(in6.sin6_port)};
  }
  return make_error(EAFNOSUPPORT, "network lock", fmt::format("address family {}", a.ss_family));
}

std::string drop_rule(const std::string& table, const char* chain, const Endpoint& from, const Endpoint& to) {
  return fmt::format("add rule inet {} {} {} saddr {} {} daddr {} tcp sport {} tcp dport {} drop\n", table, chain,
                     from.family, from.addr, to.family, to.addr, from.port, to.port);
}

}  // namespace

std::string table_name(pid_t pid) { return fmt::format("wpckpt_lock_{}", pid); }

NetworkLock::NetworkLock(pid_t pid) : pid_(pid), ctx_(nullptr, free_context) {}
NetworkLock::NetworkLock(NetworkLock&& o) noexcept
    : pid_(o.pid_), locked_(std::exchange(o.locked_, false)), ctx_(std::move(o.ctx_)) {}
NetworkLock& NetworkLock::operator=(NetworkLock&& o) noexcept {
  if (this != &o) {
    release();
    pid_ = o.pid_;
    locked_ = std::exchange(o.locked_, false);
    ctx_ = std::move(o.ctx_);
  }
  return *this;
}
NetworkLock::~NetworkLock() { release(); }

Result<void> NetworkLock::run(const std::string& commands) {
  if (!ctx_) {
    WPCKPT_TRY_ASSIGN(ctx_, context_in_netns_of(pid_));
  }
  if (nft().run_cmd_from_buffer(ctx_.get(), commands.c_str()) != 0)
    return nft_error(ctx_.get(), "lock the connections of process " + std::to_string(pid_));
  return ok();
}

Result<void> NetworkLock::add(const sockaddr_storage& local, const sockaddr_storage& peer) {
  WPCKPT_TRY_ASSIGN(Endpoint l, endpoint_of(local));
  WPCKPT_TRY_ASSIGN(Endpoint p, endpoint_of(peer));
  const std::string table = table_name(pid_);
  std::string commands;
  if (!locked_) {
    // A drop in any base chain is final: the host's own rules, whatever
    // their priority, cannot let these packets through.
    commands = fmt::format(
        "add table inet {0}\n"
        "add chain inet {0} input {{ type filter hook input priority -150; policy accept; }}\n"
        "add chain inet {0} output {{ type filter hook output priority -150; policy accept; }}\n",
        table);
  }
  commands += drop_rule(table, "input", p, l) + drop_rule(table, "output", l, p);
  WPCKPT_TRY(run(commands));
  locked_ = true;
  return ok();
}

void NetworkLock::release() {
  if (!locked_) return;
  locked_ = false;
  if (auto r = run("delete table inet " + table_name(pid_) + "\n"); !r)
    log::warn("{} (remove it with: nft delete table inet {})", r.error().message(), table_name(pid_));
}

void NetworkLock::disarm() { locked_ = false; }

Result<void> probe() {
  WPCKPT_TRY_ASSIGN(CtxPtr ctx, context_in_netns_of(::getpid()));
  nft().ctx_set_dry_run(ctx.get(), true);
  if (nft().run_cmd_from_buffer(ctx.get(), "add table inet wpckpt_lock_probe\n") != 0)
    return nft_error(ctx.get(), "dry run of a network lock");
  return ok();
}

Result<bool> unlock(pid_t dumped_pid) {
  WPCKPT_TRY_ASSIGN(CtxPtr ctx, context_in_netns_of(::getpid()));
  const std::string table = table_name(dumped_pid);
  if (nft().run_cmd_from_buffer(ctx.get(), ("delete table inet " + table + "\n").c_str()) == 0) return true;
  const std::string text = nft().ctx_get_error_buffer(ctx.get());
  if (text.find("No such file or directory") != std::string::npos) return false;  // no lock to remove
  return nft_error(ctx.get(), "remove the network lock " + table);
}

}  // namespace wpckpt::netlock
