// Libraries loaded when first needed (dlopen) instead of at every start of
// wpckpt: each shared library linked in costs every verb its loader's page
// faults (lib/net/gnutls_library.hpp, lib/netlock/nftables_library.hpp).
#pragma once

#include <dlfcn.h>

#include <string>

#include "lib/base/result.hpp"

namespace wpckpt {

// A library's table of functions, filled by a loader that runs once.
template <typename Table>
struct LoadedLibrary {
  Table table{};
  std::string error;  // empty: loaded (it stays loaded for the process's life)
};

// The table, or an error naming the library or symbol that is missing.
template <typename Table>
Result<const Table*> loaded_table(const LoadedLibrary<Table>& loaded, const char* what, const char* hint) {
  if (!loaded.error.empty()) return make_error(ELIBACC, what, loaded.error).with_hint(hint);
  return &loaded.table;
}

// dlopen(soname) for the process's life; null with `error` set on failure.
inline void* open_library(const char* soname, std::string& error) {
  void* h = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = ::dlerror();
    error = why ? why : std::string("dlopen ") + soname + " failed";
  }
  return h;
}

// Points `out` at symbol `name`; the first one missing is named in `error`.
template <typename Fn>
bool bind_symbol(void* handle, const char* soname, const char* name, Fn& out, std::string& error) {
  void* p = ::dlsym(handle, name);
  if (p == nullptr) {
    if (error.empty()) error = std::string("symbol ") + name + " missing from " + soname;
    return false;
  }
  out = reinterpret_cast<Fn>(p);
  return true;
}

}  // namespace wpckpt
