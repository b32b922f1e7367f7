#include "lib/restore/supervise.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace wpckpt::restore {

namespace {

// The one process a signal handler forwards to (handlers take no argument).
std::atomic<pid_t> g_forward_to{-1};

void forward(int sig) {
  pid_t pid = g_forward_to.load();
  if (pid > 0) ::kill(pid, sig);
}

}  // namespace

ChildExit supervise_child(pid_t pid) {
  auto t0 = std::chrono::steady_clock::now();
  g_forward_to.store(pid);
  struct sigaction sa{};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &sa, nullptr);
  int status = 0;
  ChildExit out;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno == EINTR) continue;
    g_forward_to.store(-1);
    out.code = 1;
    out.how = std::string("could not be waited for: ") + std::strerror(errno);
    return out;
  }
  g_forward_to.store(-1);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (WIFEXITED(status)) {
    out.code = WEXITSTATUS(status);
    out.how = "exited with status " + std::to_string(out.code);
  } else if (WIFSIGNALED(status)) {
    out.code = 128 + WTERMSIG(status);
    out.how = "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  } else {
    out.code = 1;
    out.how = "ended with wait status " + std::to_string(status);
  }
  return out;
}

}  // namespace wpckpt::restore
