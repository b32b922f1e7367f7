#include "lib/restore/agent_link.hpp"

#include "lib/base/uapi/agent_state.hpp"
#include "lib/probe/features.hpp"
#include "lib/ptrace/agent_injection.hpp"

namespace wpckpt::restore {

namespace {

int number_or(const nlohmann::json& t, const char* key, int otherwise) {
  auto it = t.find(key);
  return it != t.end() && it->is_number_integer() ? it->get<int>() : otherwise;
}

}  // namespace

Result<void> recreate_agent_link(ptrace::Injector& inj, const state::ProcessState& state) {
  const auto& t = state.tracking;
  if (!t.is_object()) return ok();
  const int uffd_number = number_or(t, "uffd_fd", -1);
  if (uffd_number < 0) return ok();
  if (!probe::has_feature("uffd_wp_async"))
    return make_error(ENOTSUP, "re-create the agent's userfaultfd", "uffd_wp_async is missing or switched off");
  ptrace::AgentFdsRequest request;
  request.pid = state.pid;
  // A process wpckpt had attached to stays one: `wpckpt untrack` may remove it.
  request.origin = t.value("attached", false) ? uapi::kOriginAttached : uapi::kOriginAgent;
  request.uffd_fd = uffd_number;
  request.state_fd = number_or(t, "agent_state_fd", -1);
  request.with_state_page = request.state_fd >= 0;
  WPCKPT_TRY(ptrace::inject_agent_fds(inj, request));
  return ok();
}

}  // namespace wpckpt::restore
