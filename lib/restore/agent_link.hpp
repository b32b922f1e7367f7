// A process restored from a `wpckpt run` dump had the agent's userfaultfd and
// state memfd; the dump leaves both out (state.tracking names their numbers).
// Re-creating them at the same numbers, from inside the process by injected
// syscalls, lets it be pre-dumped and dumped again. The state page carries a
// new token, so the next pre-dump captures everything (nothing is
// write-protected yet in the restored memory). The injection itself is
// shared with attach (lib/ptrace/agent_injection.hpp); a process the dump
// found attached (tracking.attached) is re-created as attached.
#pragma once

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

// No-op when the image has no agent descriptors. A uffd that cannot be made
// (e.g. userfaultfd disabled here) is reported, not fatal: the caller warns.
Result<void> recreate_agent_link(ptrace::Injector& inj, const state::ProcessState& state);

}  // namespace wpckpt::restore
