#include "lib/restore/tcp_policy.hpp"

#include <fmt/core.h>

namespace wpckpt::restore {
namespace {

bool is_established(const state::FdState& f) {
  if (f.kind != state::FdKind::InetSocket || !f.details.is_object()) return false;
  auto it = f.details.find("state");
  return it != f.details.end() && *it == "established";
}

std::string endpoint(const nlohmann::json& a) {
  if (!a.is_object() || !a.contains("addr") || !a.contains("port")) return "?";
  return fmt::format("{}:{}", a["addr"].dump(), a["port"].dump());
}

}  // namespace

Result<size_t> apply_tcp_policy(state::ProcessState& st, TcpPolicy policy) {
  size_t established = 0;
  for (auto& f : st.fds) {
    if (!is_established(f)) continue;
    ++established;
    if (policy == TcpPolicy::Established) continue;
    if (policy == TcpPolicy::Refuse) {
      return make_error(EOPNOTSUPP, "restore",
                        fmt::format("fd {} is an established TCP connection {} -> {}", f.fd,
                                    endpoint(f.details.value("local", nlohmann::json())),
                                    endpoint(f.details.value("peer", nlohmann::json()))))
          .with_hint("pass --tcp-established to restore it (TCP repair, as root), or --tcp-close to restore it closed");
    }
    // Closed: a fresh socket of the same family, neither bound nor connected.
    f.details["state"] = "closed";
    f.details["local"] = nlohmann::json::object();
    f.details["peer"] = nlohmann::json::object();
    f.details.erase("repair");
  }
  return established;
}

}  // namespace wpckpt::restore
