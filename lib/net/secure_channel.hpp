// One authenticated, encrypted TCP connection between wpckpt processes (a
// page server and a dump, a restore, a migration): TLS 1.3 with a
// pre-shared key (GnuTLS), the key being the shared secret file. Why PSK and
// not certificates: both ends are wpckpt run by the same operator, a secret
// file is one thing to copy, and the (EC)DHE-PSK handshake authenticates both
// sides at once and gives forward secrecy; a peer without the secret fails
// the handshake before it can send or read a byte of an image.
//
// On top of TLS: messages of a 16-byte header (type, length) and a payload.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt::net {

struct Endpoint {
  std::string address;  // IPv4 or IPv6 literal, or a host name
  uint16_t port = 0;
  std::string text() const;  // "address:port" ("[v6]:port")
};

// A listening TCP socket (SO_REUSEADDR); port 0 picks a free one.
Result<UniqueFd> listen_tcp(const Endpoint& where);
Result<uint16_t> local_port(int socket_fd);

struct Message {
  uint32_t type = 0;
  std::vector<std::byte> payload;
};

class SecureChannel {
 public:
  ~SecureChannel();
  SecureChannel(SecureChannel&&) noexcept;
  SecureChannel& operator=(SecureChannel&&) = delete;

  // Connects and completes the handshake within timeout_ms.
  static Result<SecureChannel> connect(const Endpoint& to, std::span<const uint8_t> secret, int timeout_ms);
  // Accepts one connection on `listen_fd` and completes the handshake.
  static Result<SecureChannel> accept(int listen_fd, std::span<const uint8_t> secret, int timeout_ms);

  Result<void> send(uint32_t type, std::span<const std::byte> payload);
  // Two parts sent as one message's payload (a name and its bytes).
  Result<void> send(uint32_t type, std::span<const std::byte> head, std::span<const std::byte> body);
  // Refuses a payload larger than max_bytes (a peer cannot make us allocate).
  Result<Message> receive(uint64_t max_bytes);
  // Waiting longer than this for a message is an error (0: forever).
  void set_receive_timeout(int timeout_ms);
  const std::string& peer() const { return peer_; }
  // Closes this copy without a word to the peer: a forked process drops the
  // connection it inherited, which its parent still uses.
  void abandon();

 private:
  struct Tls;
  SecureChannel(UniqueFd fd, std::unique_ptr<Tls> tls, std::string peer);
  Result<void> write_all(std::span<const std::byte> bytes);
  Result<void> read_all(std::span<std::byte> bytes);
  UniqueFd fd_;
  std::unique_ptr<Tls> tls_;
  std::string peer_;
};

}  // namespace wpckpt::net
