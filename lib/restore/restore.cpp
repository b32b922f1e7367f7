#include "lib/restore/restore.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "dump-format/image.hpp"
#include "lib/base/log.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/fds/recorded_file.hpp"
#include "lib/netlock/network_lock.hpp"
#include "lib/probe/features.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/regs.hpp"
#include "lib/ptrace/stop.hpp"
#include "lib/restore/address_space.hpp"
#include "lib/restore/agent_link.hpp"
#include "lib/restore/child_plan.hpp"
#include "lib/restore/credentials.hpp"
#include "lib/restore/lazy_restore.hpp"
#include "lib/restore/memory_fill.hpp"
#include "lib/restore/posix_locks.hpp"
#include "lib/restore/restore_steps.hpp"
#include "lib/restore/tree_restore.hpp"
#include "lib/state/tree_state.hpp"
#include "lib/restore/session.hpp"
#include "lib/restore/spawn.hpp"
#include "lib/restore/sysv_shm.hpp"
#include "lib/restore/threads.hpp"
#include "lib/restore/timers.hpp"
#include "lib/restore/validate.hpp"

namespace wpckpt::restore {

using fds::RecordedFile;

namespace {

// Kills the new process unless disarmed: a failed restore leaves nothing running.
class KillOnFailure {
 public:
  explicit KillOnFailure(SpawnedProcess& proc) : proc_(proc) {}
  ~KillOnFailure() {
    if (!armed_) return;
    kill_spawned(proc_, tids_);
  }
  void add_tid(pid_t tid) { tids_.push_back(tid); }
  void disarm() { armed_ = false; }

 private:
  SpawnedProcess& proc_;
  std::vector<pid_t> tids_;
  bool armed_ = true;
};

}  // namespace

Result<RestoreReport> restore_process(const std::filesystem::path& dir, const RestoreOptions& options) {
  if (state::is_tree_image(dir)) return restore_tree(dir, options);
  image::OpenOptions open_options;
  open_options.allow_other_owner = options.allow_other_owner;
  WPCKPT_TRY_ASSIGN(auto chain, image::ImageChain::open(dir, open_options));
  return restore_process(*chain, options);
}

Result<RestoreReport> restore_process(image::ImageChain& chain_ref, const RestoreOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  RestoreReport report;
  WPCKPT_TRY(probe::require_features("restore"));
  image::ImageChain* chain = &chain_ref;
  WPCKPT_TRY(check_dump(*chain));
  WPCKPT_TRY_ASSIGN(auto bytes, chain->read_file(state::kProcessStateFile));
  WPCKPT_TRY_ASSIGN(state::ProcessState st, state::parse(bytes));
  WPCKPT_TRY(validate(st));
  WPCKPT_TRY_ASSIGN(size_t connections, apply_tcp_policy(st, options.tcp));
  WPCKPT_TRY(check_timers_restorable(st));
  // Refused here, before anything exists, if the image's owner could not have had them.
  WPCKPT_TRY_ASSIGN(CredentialSwitch creds, plan_credentials(st.creds, chain->owner()));
  report.images = chain->dirs().size();
  WPCKPT_TRY_ASSIGN(ChildPlan plan, plan_child(st, *chain, report.warnings));
  std::vector<UniqueFd> held;
  WPCKPT_TRY_ASSIGN(MappingFiles files, open_files_as_owner(st, *chain, plan, held));
  WPCKPT_TRY_ASSIGN(SysvSegments segments, SysvSegments::make({&st}, chain->owner()));

  WPCKPT_TRY_ASSIGN(SpawnedProcess proc, spawn_restored(plan, options.detached));
  KillOnFailure guard(proc);
  held.clear();
  WPCKPT_TRY(seize(proc.pid));
  proc.hold.reset();  // it is stopped: its blocking read no longer matters

  WPCKPT_TRY_ASSIGN(uint64_t scratch, pick_scratch_address(proc.pid, st));
  ptrace::InjectorOptions inj_options;
  inj_options.scratch_address = scratch;
  WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(proc.pid, inj_options));
  std::vector<int> helpers = plan.keep_fds;
  helpers.insert(helpers.end(), proc.sync_fds.begin(), proc.sync_fds.end());
  WPCKPT_TRY_ASSIGN(FillStats fill, rebuild_address_space(*inj, st, *chain, files, helpers, options, report));
  WPCKPT_TRY(restore_session(*inj, st, options.shell_job));
  WPCKPT_TRY(restore_posix_locks(*inj, st));  // after the helpers' descriptors are closed
  WPCKPT_TRY_ASSIGN(std::vector<pid_t> tids, restore_threads(*inj, st, creds, [&](pid_t t) { guard.add_tid(t); }, report.lazy.get()));

  // Past this point the process runs: nothing can be undone.
  guard.disarm();
  if (auto done = segments.finish(); !done) report.warnings.push_back(done.error().message());
  detach_threads(tids);
  if (report.lazy) report.lazy->let_run();
  if (connections > 0 && options.network_lock) unlock_connections(st.pid, report.warnings);
  report.pid = proc.pid;
  report.threads = tids.size();
  report.pages_stored = fill.pages_stored;
  report.pages_zero = fill.pages_zero;
  report.pages_copied = fill.pages_copied;
  report.pages_kept = fill.pages_kept;
  report.bytes_written = fill.bytes_written;
  report.fill_seconds = fill.seconds;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace wpckpt::restore
