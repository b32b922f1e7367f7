#include "lib/restore/supervise.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>

namespace wpckpt::restore {

namespace {

// The one process a signal handler forwards to (handlers take no argument).
std::atomic<pid_t> g_forward_to{-1};

void forward(int sig) {
  pid_t pid = g_forward_to.load();
  if (pid > 0) ::kill(pid, sig);
}

}  // namespace

int supervise_child(pid_t pid) {
  g_forward_to.store(pid);
  struct sigaction sa{};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &sa, nullptr);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 1;
  }
  g_forward_to.store(-1);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace wpckpt::restore
