#include "lib/restore/agent_link.hpp"

#include <fcntl.h>
#include <sys/syscall.h>

#include <cstring>
#include <random>

#include "lib/base/uapi/agent_state.hpp"
#include "lib/base/uapi/userfaultfd.hpp"

namespace wpckpt::restore {

namespace {

Result<long> call(ptrace::Injector& inj, const char* what, long nr, uint64_t a1 = 0, uint64_t a2 = 0,
                  uint64_t a3 = 0, uint64_t a4 = 0) {
  WPCKPT_TRY_ASSIGN(long r, inj.syscall(nr, a1, a2, a3, a4));
  if (r < 0 && r > -4096) return make_error(static_cast<int>(-r), what, "in the restored process");
  return r;
}

constexpr unsigned kMfdCloexec = 1;

}  // namespace

Result<void> recreate_agent_link(ptrace::Injector& inj, const state::ProcessState& state) {
  const auto& t = state.tracking;
  if (!t.is_object() || !t.contains("uffd_fd") || !t["uffd_fd"].is_number_integer()) return ok();
  const int uffd_number = t["uffd_fd"].get<int>();
  const int flags = O_CLOEXEC | O_NONBLOCK;
  const char* route = "syscall";
  WPCKPT_TRY_ASSIGN(long got, inj.syscall(uapi::kNrUserfaultfd, flags));
  if (got < 0) {
    route = "user-mode-only";
    WPCKPT_TRY_ASSIGN(got, call(inj, "userfaultfd", uapi::kNrUserfaultfd, flags | uapi::kUffdUserModeOnly));
  }
  uint64_t api[3] = {uapi::kUffdApi, uapi::kFeatWpAsync, 0};  // struct uffdio_api
  WPCKPT_TRY(inj.write(inj.data(), api, sizeof api));
  WPCKPT_TRY(call(inj, "UFFDIO_API", SYS_ioctl, static_cast<uint64_t>(got), uapi::kUffdioApi, inj.data()));
  if (got != uffd_number) {
    WPCKPT_TRY(call(inj, "dup3 (uffd)", SYS_dup3, static_cast<uint64_t>(got), static_cast<uint64_t>(uffd_number),
                    O_CLOEXEC));
    WPCKPT_TRY(call(inj, "close", SYS_close, static_cast<uint64_t>(got)));
  }

  if (!t.contains("agent_state_fd") || !t["agent_state_fd"].is_number_integer()) return ok();
  const int state_number = t["agent_state_fd"].get<int>();
  WPCKPT_TRY(inj.write(inj.data(), uapi::kAgentMemfdName, std::strlen(uapi::kAgentMemfdName) + 1));
  WPCKPT_TRY_ASSIGN(long memfd, call(inj, "memfd_create", SYS_memfd_create, inj.data(), kMfdCloexec));
  WPCKPT_TRY(call(inj, "ftruncate", SYS_ftruncate, static_cast<uint64_t>(memfd), uapi::kAgentStateSize));
  uapi::AgentState page{};
  page.magic = uapi::kAgentMagic;
  page.version = uapi::kAgentStateVersion;
  page.pid = state.pid;
  page.uffd = uffd_number;
  page.features = uapi::kFeatWpAsync;
  page.token = std::random_device{}() | (static_cast<uint64_t>(std::random_device{}()) << 32);
  std::strncpy(page.route, route, sizeof page.route - 1);
  WPCKPT_TRY(inj.write(inj.data(), &page, sizeof page));
  WPCKPT_TRY(call(inj, "pwrite (agent state)", SYS_pwrite64, static_cast<uint64_t>(memfd), inj.data(), sizeof page, 0));
  if (memfd != state_number) {
    WPCKPT_TRY(call(inj, "dup3 (agent state)", SYS_dup3, static_cast<uint64_t>(memfd),
                    static_cast<uint64_t>(state_number), O_CLOEXEC));
    WPCKPT_TRY(call(inj, "close", SYS_close, static_cast<uint64_t>(memfd)));
  }
  return ok();
}

}  // namespace wpckpt::restore
