// libnftables, loaded (dlopen) the first time the network lock is used
// instead of at every start of wpckpt: with libmnl, libnftnl, libxtables,
// libjansson and libgmp it cost each wpckpt process ~1.2 ms of startup
// here, and only dumps of processes with TCP connections lock the network.
// The headers stay the package's; only the calls go through this table.
#pragma once

#include <nftables/libnftables.h>

#include "lib/base/result.hpp"

namespace wpckpt::netlock {

struct NftablesLibrary {
  decltype(&::nft_ctx_new) ctx_new;
  decltype(&::nft_ctx_free) ctx_free;
  decltype(&::nft_ctx_buffer_output) ctx_buffer_output;
  decltype(&::nft_ctx_buffer_error) ctx_buffer_error;
  decltype(&::nft_ctx_get_error_buffer) ctx_get_error_buffer;
  decltype(&::nft_ctx_set_dry_run) ctx_set_dry_run;
  decltype(&::nft_run_cmd_from_buffer) run_cmd_from_buffer;
};

// Loads the library once (later calls return the same table); an error
// says which library or symbol is missing.
Result<const NftablesLibrary*> load_nftables();

}  // namespace wpckpt::netlock
