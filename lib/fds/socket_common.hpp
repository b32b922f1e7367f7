// What the socket kinds (inet_socket_fd.cpp, unix_socket_fd.cpp) share: a
// copy of the target's socket to ask it questions, addresses to and from
// process.json, and the socket options a dump records.
//
// Restore creates sockets in wpckpt itself, in the thread that carries the
// image owner's file-system ids (prepare(), as files are opened), and the
// new process inherits them: errors are then ordinary Results with a message,
// and the socket files are the owner's. Capabilities are not dropped there,
// so what needs one (a port below ip_unprivileged_port_start, IP_TRANSPARENT,
// SO_MARK, ...) is refused unless the image's owner is root
// (`require_root_owner`).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/fds/fd_object.hpp"

namespace wpckpt::fds {

// getsockopt of an int option.
Result<int> socket_int_option(int sock, int level, int name, const char* what);

// An address as process.json writes it: inet {"addr","port"}, unix {"path"}
// or {"abstract": hex} (empty object: unnamed).
nlohmann::json address_to_json(const sockaddr_storage& addr, socklen_t len);
Result<void> address_from_json(const nlohmann::json& j, int family, SocketAddress& out, const std::string& where);
std::string describe_address(const SocketAddress& addr);

// Options of `sock` that differ from a fresh socket of the same family,
// type and protocol: [[level, name, value], ...] (the known table only).
Result<nlohmann::json> changed_options(int sock, int family, int type, int protocol);
// Reads them back, refusing any option outside the table (images are untrusted).
Result<void> options_from_json(const nlohmann::json& j, std::vector<SocketOption>& out, const std::string& where);
// Sets them on a new socket (before bind: some only act then).
Result<void> apply_options(int sock, const std::vector<SocketOption>& opts, const std::string& what);
// SO_BINDTODEVICE: the interface a socket is bound to ("" for none); set on
// a new socket (root-owned images only: it needs CAP_NET_RAW).
Result<std::string> bound_device(int sock);
Result<void> bind_to_device(int sock, const std::string& device, const std::string& what);
// True for options whose non-zero value needs CAP_NET_ADMIN or CAP_NET_RAW.
bool option_needs_privilege(const SocketOption& o);

// The uid of the image's owner as prepare() runs (its file-system uid).
uid_t current_owner_uid();
Result<void> require_root_owner(const std::string& what, const std::string& why);

}  // namespace wpckpt::fds
