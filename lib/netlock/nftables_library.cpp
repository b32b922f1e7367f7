#include "lib/netlock/nftables_library.hpp"

#include <string>

#include "lib/base/dynamic_library.hpp"

namespace wpckpt::netlock {
namespace {

// The soname the headers belong to (Debian 12: libnftables1).
constexpr const char* kSoname = "libnftables.so.1";

LoadedLibrary<NftablesLibrary> load() {
  LoadedLibrary<NftablesLibrary> l;
  void* h = open_library(kSoname, l.error);
  if (h == nullptr) return l;
  NftablesLibrary& n = l.table;
  std::string& e = l.error;
  bind_symbol(h, kSoname, "nft_ctx_new", n.ctx_new, e);
  bind_symbol(h, kSoname, "nft_ctx_free", n.ctx_free, e);
  bind_symbol(h, kSoname, "nft_ctx_buffer_output", n.ctx_buffer_output, e);
  bind_symbol(h, kSoname, "nft_ctx_buffer_error", n.ctx_buffer_error, e);
  bind_symbol(h, kSoname, "nft_ctx_get_error_buffer", n.ctx_get_error_buffer, e);
  bind_symbol(h, kSoname, "nft_ctx_set_dry_run", n.ctx_set_dry_run, e);
  bind_symbol(h, kSoname, "nft_run_cmd_from_buffer", n.run_cmd_from_buffer, e);
  return l;
}

}  // namespace

Result<const NftablesLibrary*> load_nftables() {
  static const LoadedLibrary<NftablesLibrary> loaded = load();
  return loaded_table(loaded, "load nftables",
                      "the network lock (dumps of processes with TCP connections) needs libnftables: install "
                      "libnftables1 (setup.sh does)");
}

}  // namespace wpckpt::netlock
