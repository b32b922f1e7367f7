#include "lib/restore/agent_link.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <cstring>
#include <optional>

#include "lib/base/uapi/agent_state.hpp"
#include "lib/base/uapi/userfaultfd.hpp"
#include "lib/probe/features.hpp"

namespace wpckpt::restore {

namespace {
constexpr const char kInRestored[] = "in the restored process";
}  // namespace

Result<void> recreate_agent_link(ptrace::Injector& inj, const state::ProcessState& state) {
  const auto& t = state.tracking;
  if (!t.is_object() || !t.contains("uffd_fd") || !t["uffd_fd"].is_number_integer()) return ok();
  const int uffd_number = t["uffd_fd"].get<int>();
  if (!probe::has_feature("uffd_wp_async"))
    return make_error(ENOTSUP, "re-create the agent's userfaultfd", "uffd_wp_async is missing or switched off");
  // The agent's routes that exist here (and are not switched off), in its order.
  const int flags = O_CLOEXEC | O_NONBLOCK;
  const char* route = nullptr;
  long got = -ENOSYS;
  if (probe::has_feature("userfaultfd_syscall")) {
    route = uapi::kRouteSyscall;
    WPCKPT_TRY_ASSIGN(got, inj.syscall(uapi::kNrUserfaultfd, flags));
  }
  if (got < 0 && probe::has_feature("userfaultfd_user_mode_only")) {
    route = uapi::kRouteUserModeOnly;
    WPCKPT_TRY_ASSIGN(got, inj.syscall(uapi::kNrUserfaultfd, flags | uapi::kUffdUserModeOnly));
  }
  if (got < 0) return make_error(static_cast<int>(-got), "userfaultfd", kInRestored);
  uapi::UffdioApi api{uapi::kUffdApi, uapi::kFeatWpAsync, 0};
  WPCKPT_TRY(inj.write(inj.data(), &api, sizeof api));
  WPCKPT_TRY(inj.checked_syscall("UFFDIO_API", kInRestored, SYS_ioctl, static_cast<uint64_t>(got), uapi::kUffdioApi, inj.data()));
  if (got != uffd_number) {
    WPCKPT_TRY(inj.checked_syscall("dup3 (uffd)", kInRestored, SYS_dup3, static_cast<uint64_t>(got), static_cast<uint64_t>(uffd_number),
                    O_CLOEXEC));
    WPCKPT_TRY(inj.checked_syscall("close", kInRestored, SYS_close, static_cast<uint64_t>(got)));
  }

  if (!t.contains("agent_state_fd") || !t["agent_state_fd"].is_number_integer()) return ok();
  const int state_number = t["agent_state_fd"].get<int>();
  // The page, written by the agent's own writer, and its name, side by side in the scratch data.
  uapi::AgentState page = uapi::make_agent_state(state.pid, uffd_number, 0, uapi::kFeatWpAsync, route);
  const uint64_t page_addr = inj.data();
  const uint64_t name_addr = page_addr + sizeof page;
  WPCKPT_TRY(inj.write(page_addr, &page, sizeof page));
  WPCKPT_TRY(inj.write(name_addr, uapi::kAgentMemfdName, std::strlen(uapi::kAgentMemfdName) + 1));
  std::optional<Error> injection_failed;
  auto in_restored = [&](long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4) -> long {
    auto r = inj.syscall(nr, a1, a2, a3, a4);
    if (!r) {
      if (!injection_failed) injection_failed = std::move(r).error();
      return -EIO;
    }
    return *r;
  };
  long memfd = uapi::create_agent_state_fd(in_restored, name_addr, page_addr);
  if (injection_failed) return std::move(*injection_failed);
  if (memfd < 0) return make_error(static_cast<int>(-memfd), "create the agent's state page", kInRestored);
  if (memfd != state_number) {
    WPCKPT_TRY(inj.checked_syscall("dup3 (agent state)", kInRestored, SYS_dup3, static_cast<uint64_t>(memfd),
                    static_cast<uint64_t>(state_number), O_CLOEXEC));
    WPCKPT_TRY(inj.checked_syscall("close", kInRestored, SYS_close, static_cast<uint64_t>(memfd)));
  }
  return ok();
}

}  // namespace wpckpt::restore
