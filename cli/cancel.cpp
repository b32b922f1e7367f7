#include "cli/cancel.hpp"

#include <signal.h>

namespace wpckpt::cli {
namespace {

std::atomic<bool> g_cancel{false};
void on_cancel(int) { g_cancel.store(true); }

}  // namespace

const std::atomic<bool>* install_cancel_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_cancel;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  return &g_cancel;
}

}  // namespace wpckpt::cli
