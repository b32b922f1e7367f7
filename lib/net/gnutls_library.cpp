#include "lib/net/gnutls_library.hpp"

#include <string>

#include "lib/base/dynamic_library.hpp"

namespace wpckpt::net {
namespace {

// The soname the headers belong to (Debian 12: libgnutls30).
constexpr const char* kSoname = "libgnutls.so.30";

bool bind(void* handle, const char* name, auto& out, std::string& error) {
  return bind_symbol(handle, kSoname, name, out, error);
}

LoadedLibrary<GnutlsLibrary> load() {
  LoadedLibrary<GnutlsLibrary> l;
  void* h = open_library(kSoname, l.error);
  if (h == nullptr) return l;
  GnutlsLibrary& g = l.table;
  std::string& e = l.error;
  bind(h, "gnutls_global_init", g.global_init, e);
  bind(h, "gnutls_strerror", g.strerror, e);
  bind(h, "gnutls_error_is_fatal", g.error_is_fatal, e);
  bind(h, "gnutls_init", g.init, e);
  bind(h, "gnutls_deinit", g.deinit, e);
  bind(h, "gnutls_priority_set_direct", g.priority_set_direct, e);
  bind(h, "gnutls_credentials_set", g.credentials_set, e);
  bind(h, "gnutls_transport_set_int2", g.transport_set_int2, e);
  bind(h, "gnutls_session_set_ptr", g.session_set_ptr, e);
  bind(h, "gnutls_session_get_ptr", g.session_get_ptr, e);
  bind(h, "gnutls_handshake", g.handshake, e);
  bind(h, "gnutls_handshake_set_timeout", g.handshake_set_timeout, e);
  bind(h, "gnutls_record_send", g.record_send, e);
  bind(h, "gnutls_record_recv", g.record_recv, e);
  bind(h, "gnutls_record_cork", g.record_cork, e);
  bind(h, "gnutls_record_uncork", g.record_uncork, e);
  bind(h, "gnutls_record_set_timeout", g.record_set_timeout, e);
  bind(h, "gnutls_bye", g.bye, e);
  bind(h, "gnutls_psk_allocate_client_credentials", g.psk_allocate_client_credentials, e);
  bind(h, "gnutls_psk_free_client_credentials", g.psk_free_client_credentials, e);
  bind(h, "gnutls_psk_set_client_credentials", g.psk_set_client_credentials, e);
  bind(h, "gnutls_psk_allocate_server_credentials", g.psk_allocate_server_credentials, e);
  bind(h, "gnutls_psk_free_server_credentials", g.psk_free_server_credentials, e);
  bind(h, "gnutls_psk_set_server_credentials_function", g.psk_set_server_credentials_function, e);
  bind(h, "gnutls_malloc", g.malloc, e);
  return l;
}

}  // namespace

Result<const GnutlsLibrary*> load_gnutls() {
  static const LoadedLibrary<GnutlsLibrary> loaded = load();
  return loaded_table(loaded, "load GnuTLS",
                      "page-server connections need GnuTLS: install libgnutls30 (setup.sh does)");
}

}  // namespace wpckpt::net
