#include "lib/fds/socket_common.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/fsuid.h>
#include <sys/un.h>
#include <unistd.h>

#include <net/if.h>

#include <algorithm>
#include <cstring>

#include "lib/state/json_fields.hpp"

namespace wpckpt::fds {
namespace {

struct KnownOption {
  int level, name;
  const char* label;
  int needs_privilege_above;  // a value above this needs CAP_NET_ADMIN/RAW (INT32_MAX: never)
};

constexpr int kNever = INT32_MAX;

// The int options a dump records when they differ from a fresh socket's.
// Not recorded (and said in wpckpt-dump(1)): multicast memberships,
// and attached socket filters (refused by the capture). SO_BINDTODEVICE is
// recorded apart (a name: bound_device()).
constexpr KnownOption kOptions[] = {
    {SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", kNever},
    {SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", kNever},
    {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", kNever},
    {SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST", kNever},
    {SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE", kNever},
    {SOL_SOCKET, SO_DONTROUTE, "SO_DONTROUTE", kNever},
    {SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY", 6},
    {SOL_SOCKET, SO_LINGER, "SO_LINGER", kNever},  // a struct linger: read_option()
    {SOL_SOCKET, SO_MARK, "SO_MARK", 0},
    {SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT", kNever},
    {SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED", kNever},
    {SOL_SOCKET, SO_TIMESTAMP, "SO_TIMESTAMP", kNever},
    {SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF", kNever},
    {SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", kNever},
    {SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", kNever},
    {IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", kNever},
    {IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", kNever},
    {IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", kNever},
    {IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", kNever},
    {IPPROTO_TCP, TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT", kNever},
    {IPPROTO_TCP, TCP_FASTOPEN, "TCP_FASTOPEN", kNever},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", kNever},
    {IPPROTO_TCP, TCP_CORK, "TCP_CORK", kNever},
    {IPPROTO_TCP, TCP_SYNCNT, "TCP_SYNCNT", kNever},
    {IPPROTO_TCP, TCP_LINGER2, "TCP_LINGER2", kNever},
    {IPPROTO_TCP, TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT", kNever},
    {IPPROTO_IP, IP_TOS, "IP_TOS", kNever},
    {IPPROTO_IP, IP_TTL, "IP_TTL", kNever},
    {IPPROTO_IP, IP_FREEBIND, "IP_FREEBIND", kNever},
    {IPPROTO_IP, IP_TRANSPARENT, "IP_TRANSPARENT", 0},
    {IPPROTO_IP, IP_RECVERR, "IP_RECVERR", kNever},
    {IPPROTO_IP, IP_PKTINFO, "IP_PKTINFO", kNever},
    {IPPROTO_IP, IP_RECVTOS, "IP_RECVTOS", kNever},
    {IPPROTO_IP, IP_RECVTTL, "IP_RECVTTL", kNever},
    {IPPROTO_IP, IP_MULTICAST_TTL, "IP_MULTICAST_TTL", kNever},
    {IPPROTO_IP, IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP", kNever},
    {IPPROTO_IP, IP_MTU_DISCOVER, "IP_MTU_DISCOVER", kNever},
    {IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, "IP_BIND_ADDRESS_NO_PORT", kNever},
    {IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", kNever},
    {IPPROTO_IPV6, IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO", kNever},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", kNever},
    {IPPROTO_IPV6, IPV6_TCLASS, "IPV6_TCLASS", kNever},
    {IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS", kNever},
    {IPPROTO_IPV6, IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP", kNever},
    {IPPROTO_IPV6, IPV6_RECVERR, "IPV6_RECVERR", kNever},
    {IPPROTO_IPV6, IPV6_FREEBIND, "IPV6_FREEBIND", kNever},
    {IPPROTO_IPV6, IPV6_TRANSPARENT, "IPV6_TRANSPARENT", 0},
    {IPPROTO_IPV6, IPV6_MTU_DISCOVER, "IPV6_MTU_DISCOVER", kNever},
};

bool is_multicast(const KnownOption& k) {
  return (k.level == IPPROTO_IP && (k.name == IP_MULTICAST_TTL || k.name == IP_MULTICAST_LOOP)) ||
         (k.level == IPPROTO_IPV6 && (k.name == IPV6_MULTICAST_HOPS || k.name == IPV6_MULTICAST_LOOP));
}

bool applies(const KnownOption& k, int family, int type, int protocol) {
  if (is_multicast(k) && type != SOCK_DGRAM) return false;  // setsockopt refuses them on a stream socket
  if (k.level == IPPROTO_TCP) return protocol == IPPROTO_TCP;
  if (k.level == IPPROTO_IP) return family == AF_INET;
  if (k.level == IPPROTO_IPV6) return family == AF_INET6;
  return true;
}

// An option's value as the table records it. SO_LINGER is a struct
// linger: its timeout in seconds when on, -1 when off.
Result<int> read_option(int sock, const KnownOption& k) {
  if (k.level != SOL_SOCKET || k.name != SO_LINGER) return socket_int_option(sock, k.level, k.name, k.label);
  linger l{};
  socklen_t len = sizeof l;
  if (::getsockopt(sock, SOL_SOCKET, SO_LINGER, &l, &len) != 0) return errno_error("getsockopt", k.label);
  return l.l_onoff ? l.l_linger : -1;
}

const KnownOption* find_option(int level, int name) {
  for (const auto& k : kOptions)
    if (k.level == level && k.name == name) return &k;
  return nullptr;
}

std::string hex_of(const char* p, size_t n) {
  return state::to_hex(std::vector<uint8_t>(p, p + n));
}

}  // namespace

Result<int> socket_int_option(int sock, int level, int name, const char* what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(sock, level, name, &value, &len) != 0) return errno_error("getsockopt", what);
  return value;
}

nlohmann::json address_to_json(const sockaddr_storage& addr, socklen_t len) {
  nlohmann::json j = nlohmann::json::object();
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
    j["addr"] = text;
    j["port"] = ntohs(in.sin_port);
  } else if (addr.ss_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    j["addr"] = text;
    j["port"] = ntohs(in6.sin6_port);
    if (in6.sin6_scope_id != 0) j["scope_id"] = in6.sin6_scope_id;
  } else if (addr.ss_family == AF_UNIX && len > offsetof(sockaddr_un, sun_path)) {
    const auto& un = reinterpret_cast<const sockaddr_un&>(addr);
    size_t n = len - offsetof(sockaddr_un, sun_path);
    if (un.sun_path[0] == '\0') {
      j["abstract"] = hex_of(un.sun_path + 1, n - 1);
    } else {
      j["path"] = std::string(un.sun_path, ::strnlen(un.sun_path, n));
    }
  }
  return j;
}

Result<void> address_from_json(const nlohmann::json& j, int family, SocketAddress& out, const std::string& where) {
  out = SocketAddress{};
  if (!j.is_object()) return state::field_error(where, "must be an object");
  if (j.empty()) return ok();
  if (family == AF_UNIX) {
    auto& un = reinterpret_cast<sockaddr_un&>(out.addr);
    un.sun_family = AF_UNIX;
    std::vector<uint8_t> name;
    bool abstract = j.contains("abstract");
    if (abstract) {
      WPCKPT_TRY(state::read_json(j["abstract"], name, where + ".abstract"));
    } else {
      std::string path;
      WPCKPT_TRY(state::read_json(j.value("path", nlohmann::json()), path, where + ".path"));
      name.assign(path.begin(), path.end());
      if (name.empty() || std::memchr(name.data(), 0, name.size()))
        return state::field_error(where + ".path", "must be a path without NUL bytes");
    }
    if (name.size() + (abstract ? 1 : 0) >= sizeof un.sun_path) return state::field_error(where, "is too long for a unix socket name");
    std::memcpy(un.sun_path + (abstract ? 1 : 0), name.data(), name.size());
    // A path ends in its NUL; an abstract name starts with one.
    out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
    return ok();
  }
  std::string text;
  uint16_t port = 0;
  WPCKPT_TRY(state::read_json(j.value("addr", nlohmann::json()), text, where + ".addr"));
  WPCKPT_TRY(state::read_json(j.value("port", nlohmann::json()), port, where + ".port"));
  if (family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(out.addr);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    if (::inet_pton(AF_INET, text.c_str(), &in.sin_addr) != 1) return state::field_error(where + ".addr", "is not an IPv4 address");
    out.len = sizeof in;
    return ok();
  }
  auto& in6 = reinterpret_cast<sockaddr_in6&>(out.addr);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  if (::inet_pton(AF_INET6, text.c_str(), &in6.sin6_addr) != 1) return state::field_error(where + ".addr", "is not an IPv6 address");
  if (j.contains("scope_id")) WPCKPT_TRY(state::read_json(j["scope_id"], in6.sin6_scope_id, where + ".scope_id"));
  out.len = sizeof in6;
  return ok();
}

std::string describe_address(const SocketAddress& addr) {
  if (addr.len == 0) return "(unnamed)";
  auto j = address_to_json(addr.addr, addr.len);
  if (j.contains("path")) return j["path"].get<std::string>();
  if (j.contains("abstract")) return "@" + j["abstract"].get<std::string>();
  if (!j.contains("addr")) return "(unnamed)";
  std::string a = j["addr"].get<std::string>();
  if (addr.addr.ss_family == AF_INET6) a = "[" + a + "]";
  return a + ":" + std::to_string(j["port"].get<int>());
}

Result<nlohmann::json> changed_options(int sock, int family, int type, int protocol) {
  UniqueFd fresh(::socket(family, type | SOCK_CLOEXEC, protocol));
  if (!fresh) return errno_error("socket", "a fresh socket to compare options with");
  nlohmann::json out = nlohmann::json::array();
  for (const auto& k : kOptions) {
    if (!applies(k, family, type, protocol)) continue;
    auto now = read_option(sock, k);
    auto base = read_option(fresh.get(), k);
    if (!now || !base || *now == *base) continue;  // not supported by this kind of socket, or unchanged
    out.push_back({k.level, k.name, *now});
  }
  return out;
}

Result<void> options_from_json(const nlohmann::json& j, std::vector<SocketOption>& out, const std::string& where) {
  out.clear();
  if (j.is_null()) return ok();
  if (!j.is_array()) return state::field_error(where, "must be an array");
  for (const auto& e : j) {
    SocketOption o;
    if (!e.is_array() || e.size() != 3 || !e[0].is_number_integer() || !e[1].is_number_integer() ||
        !e[2].is_number_integer())
      return state::field_error(where, "entries must be [level, name, value]");
    o.level = e[0].get<int>();
    o.name = e[1].get<int>();
    o.value = e[2].get<int>();
    if (!find_option(o.level, o.name))
      return state::field_error(where, fmt::format("names socket option {}/{}, which a dump never records", o.level, o.name));
    out.push_back(o);
  }
  return ok();
}

Result<void> apply_options(int sock, const std::vector<SocketOption>& opts, const std::string& what) {
  for (const auto& o : opts) {
    const KnownOption* k = find_option(o.level, o.name);
    // The kernel doubles a buffer size it is given (socket(7)): give it half.
    int value = (o.level == SOL_SOCKET && (o.name == SO_RCVBUF || o.name == SO_SNDBUF)) ? o.value / 2 : o.value;
    linger l{o.value >= 0 ? 1 : 0, o.value >= 0 ? o.value : 0};
    const bool is_linger = o.level == SOL_SOCKET && o.name == SO_LINGER;
    if (is_linger ? ::setsockopt(sock, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0
                  : ::setsockopt(sock, o.level, o.name, &value, sizeof value) != 0)
      return errno_error(fmt::format("setsockopt({}={})", k ? k->label : "?", o.value), what);
  }
  return ok();
}

bool option_needs_privilege(const SocketOption& o) {
  const KnownOption* k = find_option(o.level, o.name);
  return k && o.value > k->needs_privilege_above;
}

Result<std::string> bound_device(int sock) {
  char name[IFNAMSIZ + 1] = {};
  socklen_t len = IFNAMSIZ;
  if (::getsockopt(sock, SOL_SOCKET, SO_BINDTODEVICE, name, &len) != 0) return errno_error("getsockopt", "SO_BINDTODEVICE");
  return std::string(name, strnlen(name, std::min<size_t>(len, IFNAMSIZ)));
}

Result<void> bind_to_device(int sock, const std::string& device, const std::string& what) {
  if (device.empty()) return ok();
  WPCKPT_TRY(require_root_owner(what, "SO_BINDTODEVICE " + device + " needs CAP_NET_RAW"));
  if (::setsockopt(sock, SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), static_cast<socklen_t>(device.size())) != 0)
    return errno_error("setsockopt(SO_BINDTODEVICE=" + device + ")", what)
        .with_hint("the network interface the socket was bound to must exist where it is restored");
  return ok();
}

uid_t current_owner_uid() { return static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1))); }

Result<void> require_root_owner(const std::string& what, const std::string& why) {
  if (current_owner_uid() == 0) return ok();
  return make_error(EPERM, what, why)
      .with_hint("only an image owned by root may hold it: the restored process runs with the image owner's rights");
}

}  // namespace wpckpt::fds
