// GnuTLS, loaded (dlopen) the first time a secure channel is made instead of
// at every start of wpckpt. With its eight dependencies (nettle, hogweed,
// gmp, p11-kit, ...) it cost each wpckpt process ~3.8 ms of startup here
// (page faults of the dynamic loader), and only page-server connections
// use it: a pre-dump loop paid it on every step. The headers stay the
// package's; only the calls go through this table.
#pragma once

#include <gnutls/gnutls.h>

#include "lib/base/result.hpp"

namespace wpckpt::net {

struct GnutlsLibrary {
  decltype(&::gnutls_global_init) global_init;
  decltype(&::gnutls_strerror) strerror;
  decltype(&::gnutls_error_is_fatal) error_is_fatal;
  decltype(&::gnutls_init) init;
  decltype(&::gnutls_deinit) deinit;
  decltype(&::gnutls_priority_set_direct) priority_set_direct;
  decltype(&::gnutls_credentials_set) credentials_set;
  decltype(&::gnutls_transport_set_int2) transport_set_int2;
  decltype(&::gnutls_session_set_ptr) session_set_ptr;
  decltype(&::gnutls_session_get_ptr) session_get_ptr;
  decltype(&::gnutls_handshake) handshake;
  decltype(&::gnutls_handshake_set_timeout) handshake_set_timeout;
  decltype(&::gnutls_record_send) record_send;
  decltype(&::gnutls_record_recv) record_recv;
  decltype(&::gnutls_record_cork) record_cork;
  decltype(&::gnutls_record_uncork) record_uncork;
  decltype(&::gnutls_record_set_timeout) record_set_timeout;
  decltype(&::gnutls_bye) bye;
  decltype(&::gnutls_psk_allocate_client_credentials) psk_allocate_client_credentials;
  decltype(&::gnutls_psk_free_client_credentials) psk_free_client_credentials;
  decltype(&::gnutls_psk_set_client_credentials) psk_set_client_credentials;
  decltype(&::gnutls_psk_allocate_server_credentials) psk_allocate_server_credentials;
  decltype(&::gnutls_psk_free_server_credentials) psk_free_server_credentials;
  decltype(&::gnutls_psk_set_server_credentials_function) psk_set_server_credentials_function;
  gnutls_alloc_function* malloc;  // the library's gnutls_malloc (a variable)
};

// Loads the library once (later calls return the same table); an error
// says which library or symbol is missing.
Result<const GnutlsLibrary*> load_gnutls();

}  // namespace wpckpt::net
