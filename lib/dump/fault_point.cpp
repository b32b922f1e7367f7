#include "lib/dump/fault_point.hpp"

#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "lib/base/privilege.hpp"

namespace wpckpt::dump {

void fault_point(const char* name, const std::atomic<bool>* cancel) {
  const char* spec = test_hook_env("WPCKPT_FAULT_POINT");
  if (!spec) return;
  std::string s(spec);
  size_t colon = s.find(':');
  if (s.substr(0, colon) != name) return;
  long ms = colon == std::string::npos ? -1 : std::atol(s.c_str() + colon + 1);
  std::fprintf(stderr, "wpckpt: fault point %s\n", name);
  std::fflush(stderr);
  for (long waited = 0; ms < 0 || waited < ms; waited += 10) {
    if (cancel && cancel->load()) return;
    struct timespec ts {0, 10'000'000};
    nanosleep(&ts, nullptr);
  }
}

Error interrupted_error(pid_t pid) {
  return make_error(ECANCELED, "dump interrupted", "process " + std::to_string(pid))
      .with_hint("the process was left running unchanged and no image was written");
}

}  // namespace wpckpt::dump
