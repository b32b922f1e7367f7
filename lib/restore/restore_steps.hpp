// The steps of a restore, shared by one process (restore.cpp) and a tree
// (tree_restore.cpp), in the order they run: read and plan, open files as
// the image's owner, spawn (spawn.hpp), seize, rebuild the address space and
// fill it, threads and credentials, detach.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "dump-format/image.hpp"
#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/restore/address_space.hpp"
#include "lib/restore/child_plan.hpp"
#include "lib/restore/credentials.hpp"
#include "lib/restore/lazy_restore.hpp"
#include "lib/restore/memory_fill.hpp"
#include "lib/restore/restore.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

// Restore needs a dump's chain (not a pre-dump's).
Result<void> check_dump(const image::ImageChain& chain);
// What the new process does for itself before it is seized (child_plan.hpp).
Result<ChildPlan> plan_child(const state::ProcessState& st, image::ImageChain& chain,
                             std::vector<std::string>& warnings, const TreeFds* tree = nullptr);
// Every file the image names, opened now as the image's owner, before anything is created.
Result<MappingFiles> open_files_as_owner(const state::ProcessState& st, image::ImageChain& chain, ChildPlan& plan,
                                         std::vector<UniqueFd>& held);
// Seizes a new process (PTRACE_O_EXITKILL) and stops it.
Result<void> seize(pid_t pid);
// The seized main thread rebuilds the address space and fills it from the
// chain, then drops the descriptors only restore needed (`helpers`).
Result<FillStats> rebuild_address_space(ptrace::Injector& inj, const state::ProcessState& st, image::ImageChain& chain,
                                        const MappingFiles& files, const std::vector<int>& helpers,
                                        const RestoreOptions& options, RestoreReport& report);
// The new process's parent-death signal: restore holds it at SIGKILL until
// the process is seized (child_plan.hpp), then 0, or a tree member's own.
Result<void> set_death_signal(ptrace::Injector& inj, int sig);
// The other threads with their tids (each passed to `created`), every thread
// registered and given its credentials, then its registers. Returns the
// tids in st.threads order.
Result<std::vector<pid_t>> restore_threads(ptrace::Injector& inj, const state::ProcessState& st,
                                           const CredentialSwitch& creds, const std::function<void(pid_t)>& created,
                                           const LazyRestore* lazy);
void detach_threads(const std::vector<pid_t>& tids);
// Removes the dump's network lock of `dumped_pid` (a warning if it cannot).
void unlock_connections(pid_t dumped_pid, std::vector<std::string>& warnings);

}  // namespace wpckpt::restore
