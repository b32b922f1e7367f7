#include "lib/net/secure_channel.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cstring>
#include <mutex>

#include "lib/net/gnutls_library.hpp"

namespace wpckpt::net {

namespace {

constexpr const char* kPskUser = "wpckpt";
// TLS 1.3 only, and only the key exchanges that mix the PSK with an
// ephemeral Diffie-Hellman: authentication by the secret, forward secrecy.
// AES-GCM first: with AES-NI it runs at ~2 GB/s here, where GnuTLS's default
// pick, ChaCha20 (nettle's C code), took 18% of a page-server dump's CPU.
constexpr const char* kPriorities =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305";
constexpr size_t kHeaderBytes = 16;
constexpr uint32_t kMagic = 0x77706b31;  // "wpk1"

// Loaded by global_init(), which connect() and accept() call first: every
// other call below works on a session one of them made.
const GnutlsLibrary& tls_lib() { return **load_gnutls(); }

Error tls_error(int code, const std::string& op, const std::string& context) {
  return make_error(EPROTO, op, context + ": " + tls_lib().strerror(code));
}

void put32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void put64(std::byte* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
uint32_t get32(const std::byte* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t get64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

std::string peer_name(const sockaddr_storage& sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (sa.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return fmt::format("{}:{}", host, port);
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(&sa);
  inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  return fmt::format("[{}]:{}", host, ntohs(in6->sin6_port));
}

Result<void> wait_fd(int fd, short events, int timeout_ms, const std::string& what) {
  pollfd p{fd, events, 0};
  for (;;) {
    int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("poll", what);
    if (n == 0) return make_error(ETIMEDOUT, what);
    return ok();
  }
}

void set_tcp_options(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

std::string Endpoint::text() const {
  return address.find(':') != std::string::npos ? fmt::format("[{}]:{}", address, port) : fmt::format("{}:{}", address, port);
}

struct SecureChannel::Tls {
  gnutls_session_t session = nullptr;
  gnutls_psk_client_credentials_t client = nullptr;
  gnutls_psk_server_credentials_t server = nullptr;
  std::vector<uint8_t> secret;  // the server's lookup callback reads it
  ~Tls() {
    if (session) tls_lib().deinit(session);
    if (client) tls_lib().psk_free_client_credentials(client);
    if (server) tls_lib().psk_free_server_credentials(server);
  }
};

namespace {

int server_key(gnutls_session_t session, const char* user, gnutls_datum_t* key) {
  auto* tls = static_cast<const std::vector<uint8_t>*>(tls_lib().session_get_ptr(session));
  if (tls == nullptr || std::strcmp(user, kPskUser) != 0) return -1;
  key->data = static_cast<unsigned char*>((*tls_lib().malloc)(tls->size()));
  if (key->data == nullptr) return -1;
  std::memcpy(key->data, tls->data(), tls->size());
  key->size = static_cast<unsigned>(tls->size());
  return 0;
}

Result<void> global_init() {
  WPCKPT_TRY_ASSIGN(const GnutlsLibrary* library, load_gnutls());
  static int status = library->global_init();
  if (status < 0) return tls_error(status, "gnutls_global_init", "");
  return ok();
}

Result<void> handshake(gnutls_session_t session, int fd, int timeout_ms, const std::string& peer, bool client) {
  tls_lib().transport_set_int2(session, fd, fd);
  tls_lib().handshake_set_timeout(session, static_cast<unsigned>(timeout_ms));
  int r;
  do {
    r = tls_lib().handshake(session);
  } while (r < 0 && tls_lib().error_is_fatal(r) == 0);
  if (r == 0) return ok();
  Error e = make_error(r == GNUTLS_E_TIMEDOUT ? ETIMEDOUT : EACCES, "authenticate with",
                       peer + " failed (TLS: " + tls_lib().strerror(r) + ")");
  return std::move(e).with_hint(client ? "both sides must use the same --secret-file (and the peer must be a wpckpt page server)"
                                       : "a client with another secret, or not wpckpt, was refused");
}

}  // namespace

SecureChannel::SecureChannel(UniqueFd fd, std::unique_ptr<Tls> tls, std::string peer)
    : fd_(std::move(fd)), tls_(std::move(tls)), peer_(std::move(peer)) {}
SecureChannel::SecureChannel(SecureChannel&&) noexcept = default;
SecureChannel::~SecureChannel() {
  if (tls_ && tls_->session && fd_.get() >= 0) tls_lib().bye(tls_->session, GNUTLS_SHUT_WR);
}

void SecureChannel::abandon() { fd_.reset(); }

Result<UniqueFd> listen_tcp(const Endpoint& where) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(where.port);
  int g = ::getaddrinfo(where.address.empty() ? nullptr : where.address.c_str(), port.c_str(), &hints, &res);
  if (g != 0) return make_error(EINVAL, "resolve address", where.address + ": " + gai_strerror(g));
  Error last = make_error(EADDRNOTAVAIL, "listen", where.text());
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) continue;
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), 8) != 0) {
      last = errno_error("listen", where.text());
      continue;
    }
    ::freeaddrinfo(res);
    return fd;
  }
  ::freeaddrinfo(res);
  return std::move(last).with_hint("choose another --port, or an --address of this host");
}

Result<uint16_t> local_port(int socket_fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  if (::getsockname(socket_fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return errno_error("getsockname");
  if (sa.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port);
}

Result<SecureChannel> SecureChannel::connect(const Endpoint& to, std::span<const uint8_t> secret, int timeout_ms) {
  WPCKPT_TRY(global_init());
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(to.port);
  int g = ::getaddrinfo(to.address.c_str(), port.c_str(), &hints, &res);
  if (g != 0) return make_error(EINVAL, "resolve address", to.address + ": " + gai_strerror(g));
  UniqueFd fd;
  Error last = make_error(EHOSTUNREACH, "connect", to.text());
  for (addrinfo* ai = res; ai && fd.get() < 0; ai = ai->ai_next) {
    UniqueFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (s.get() < 0) continue;
    if (::connect(s.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = errno_error("connect", to.text());
        continue;
      }
      if (auto w = wait_fd(s.get(), POLLOUT, timeout_ms, "connect " + to.text()); !w) {
        last = std::move(w).error();
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = make_error(err, "connect", to.text());
        continue;
      }
    }
    fd = std::move(s);
  }
  ::freeaddrinfo(res);
  if (fd.get() < 0) return std::move(last).with_hint("start `wpckpt page-server` there first, with the same --port");
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  set_tcp_options(fd.get());

  auto tls = std::make_unique<Tls>();
  int r = tls_lib().psk_allocate_client_credentials(&tls->client);
  if (r < 0) return tls_error(r, "TLS credentials", to.text());
  const gnutls_datum_t key{const_cast<unsigned char*>(secret.data()), static_cast<unsigned>(secret.size())};
  if ((r = tls_lib().psk_set_client_credentials(tls->client, kPskUser, &key, GNUTLS_PSK_KEY_RAW)) < 0 ||
      (r = tls_lib().init(&tls->session, GNUTLS_CLIENT)) < 0 ||
      (r = tls_lib().priority_set_direct(tls->session, kPriorities, nullptr)) < 0 ||
      (r = tls_lib().credentials_set(tls->session, GNUTLS_CRD_PSK, tls->client)) < 0)
    return tls_error(r, "TLS session", to.text());
  WPCKPT_TRY(handshake(tls->session, fd.get(), timeout_ms, to.text(), true));
  return SecureChannel(std::move(fd), std::move(tls), to.text());
}

Result<SecureChannel> SecureChannel::accept(int listen_fd, std::span<const uint8_t> secret, int timeout_ms) {
  WPCKPT_TRY(global_init());
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  UniqueFd fd;
  for (;;) {
    fd.reset(::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC));
    if (fd.get() >= 0) break;
    if (errno != EINTR) return errno_error("accept");
  }
  set_tcp_options(fd.get());
  std::string peer = peer_name(sa);
  auto tls = std::make_unique<Tls>();
  tls->secret.assign(secret.begin(), secret.end());
  int r = tls_lib().psk_allocate_server_credentials(&tls->server);
  if (r < 0) return tls_error(r, "TLS credentials", peer);
  tls_lib().psk_set_server_credentials_function(tls->server, server_key);
  if ((r = tls_lib().init(&tls->session, GNUTLS_SERVER)) < 0 ||
      (r = tls_lib().priority_set_direct(tls->session, kPriorities, nullptr)) < 0 ||
      (r = tls_lib().credentials_set(tls->session, GNUTLS_CRD_PSK, tls->server)) < 0)
    return tls_error(r, "TLS session", peer);
  tls_lib().session_set_ptr(tls->session, &tls->secret);
  WPCKPT_TRY(handshake(tls->session, fd.get(), timeout_ms, peer, false));
  return SecureChannel(std::move(fd), std::move(tls), peer);
}

void SecureChannel::set_receive_timeout(int timeout_ms) {
  tls_lib().record_set_timeout(tls_->session, static_cast<unsigned>(timeout_ms));
}

Result<void> SecureChannel::write_all(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    ssize_t n = tls_lib().record_send(tls_->session, bytes.data(), bytes.size());
    if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN) continue;
    if (n < 0) return tls_error(static_cast<int>(n), "send to", peer_);
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return ok();
}

Result<void> SecureChannel::read_all(std::span<std::byte> bytes) {
  while (!bytes.empty()) {
    ssize_t n = tls_lib().record_recv(tls_->session, bytes.data(), bytes.size());
    if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN) continue;
    if (n == 0) return make_error(ECONNRESET, "receive from", peer_ + ": the connection was closed");
    if (n == GNUTLS_E_TIMEDOUT) return make_error(ETIMEDOUT, "receive from", peer_);
    if (n < 0) return tls_error(static_cast<int>(n), "receive from", peer_);
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return ok();
}

Result<void> SecureChannel::send(uint32_t type, std::span<const std::byte> payload) { return send(type, payload, {}); }

Result<void> SecureChannel::send(uint32_t type, std::span<const std::byte> head, std::span<const std::byte> body) {
  std::byte header[kHeaderBytes];
  put32(header, kMagic);
  put32(header + 4, type);
  put64(header + 8, head.size() + body.size());
  // Small messages go out as one TLS record; page data is sent as it is.
  if (head.size() + body.size() > 64 * 1024) {
    WPCKPT_TRY(write_all(header));
    WPCKPT_TRY(write_all(head));
    return write_all(body);
  }
  tls_lib().record_cork(tls_->session);
  WPCKPT_TRY(write_all(header));
  WPCKPT_TRY(write_all(head));
  WPCKPT_TRY(write_all(body));
  int r;
  do {
    r = tls_lib().record_uncork(tls_->session, GNUTLS_RECORD_WAIT);
  } while (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN);
  if (r < 0) return tls_error(r, "send to", peer_);
  return ok();
}

Result<Message> SecureChannel::receive(uint64_t max_bytes) {
  std::byte header[kHeaderBytes];
  WPCKPT_TRY(read_all(header));
  if (get32(header) != kMagic) return make_error(EPROTO, "receive from", peer_ + ": not a wpckpt message");
  Message m;
  m.type = get32(header + 4);
  uint64_t size = get64(header + 8);
  if (size > max_bytes)
    return make_error(EMSGSIZE, "receive from", fmt::format("{}: a message of {} bytes (at most {} here)", peer_, size, max_bytes));
  m.payload.resize(size);
  WPCKPT_TRY(read_all(m.payload));
  return m;
}

}  // namespace wpckpt::net
