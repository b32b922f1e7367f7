#include "lib/restore/restore_steps.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/personality.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "lib/base/log.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/fds/recorded_file.hpp"
#include "lib/netlock/network_lock.hpp"
#include "lib/ptrace/regs.hpp"
#include "lib/ptrace/stop.hpp"
#include "lib/restore/agent_link.hpp"
#include "lib/restore/threads.hpp"
#include "lib/restore/timers.hpp"

namespace wpckpt::restore {

using fds::RecordedFile;

// Opens the files the mappings and PR_SET_MM need, checks each is the
// recorded one, and places them above every number the plan uses: the new
// process inherits them and maps them by these numbers.
Result<MappingFiles> open_mapping_files(const state::ProcessState& st, ChildPlan& plan, std::vector<UniqueFd>& held) {
  MappingFiles files;
  std::map<std::string, const state::Mapping*> first;
  std::map<std::string, bool> writable;
  // `first` keeps pointers into this vector: it must outlive the loop.
  const std::vector<state::Mapping> mappings = regular_mappings(st);
  for (const auto& m : mappings) {
    if (!m.file || m.file->deleted || !tracker::maps_file_again(m.kind)) continue;
    first.emplace(m.file->path, &m);
    writable[m.file->path] |= m.shared && ((m.prot & PROT_WRITE) || m.has_vm_flag("mw"));
  }
  int floor = plan_fd_floor(plan);
  auto place = [&](int fd) -> Result<int> {
    UniqueFd low(fd);
    int high = fcntl(low.get(), F_DUPFD_CLOEXEC, floor);
    if (high < 0) return errno_error("fcntl(F_DUPFD)", "mapping file");
    held.emplace_back(high);
    plan.keep_fds.push_back(high);
    floor = high + 1;
    return high;
  };
  for (const auto& [path, m] : first) {
    RecordedFile want;
    want.identity = &*m->file;
    want.what = "mapped file";
    want.content_matters = true;  // the mapping shows its bytes
    auto fd = fds::open_recorded(want, writable[path] ? O_RDWR : O_RDONLY);
    if (!fd) {
      if (m->kind == tracker::MemoryKind::Shmem) continue;  // recreated as shared anonymous memory, contents from the image
      return std::move(fd).error();
    }
    WPCKPT_TRY_ASSIGN(files.by_path[path], place(fd->release()));
  }
  for (const auto& f : st.fds)
    if (f.kind == state::FdKind::Memfd && f.file) files.memfd_by_inode.emplace(std::pair{f.file->dev, f.file->inode}, f.fd);
  if (!st.mm.exe_path.empty()) {
    state::FileIdentity exe{st.mm.exe_path, st.mm.exe_dev, st.mm.exe_inode, 0, 0, false};
    RecordedFile want;
    want.identity = &exe;
    want.type = S_IFREG;
    want.what = "executable";
    want.content_matters = true;
    WPCKPT_TRY_ASSIGN(UniqueFd fd, fds::open_recorded(want, O_RDONLY));
    WPCKPT_TRY_ASSIGN(files.exe_fd, place(fd.release()));
  }
  return files;
}

Result<void> seize(pid_t pid) {
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceSeize), pid, nullptr,
               reinterpret_cast<void*>(ptrace::trace_options() | uapi::kPtraceOExitkill)) != 0)
    return errno_error("ptrace(SEIZE)", "new process " + std::to_string(pid));
  WPCKPT_TRY_ASSIGN(bool alive, ptrace::interrupt_and_wait(pid, nullptr));
  if (!alive) return make_error(ESRCH, "stop new process", std::to_string(pid));
  return ok();
}

// The new process is a fork of wpckpt: its rseq area (glibc's, in wpckpt's
// TLS) is about to be unmapped, so the kernel must stop writing to it.
Result<void> drop_inherited_rseq(ptrace::Injector& inj) {
  WPCKPT_TRY_ASSIGN(auto rseq, ptrace::get_rseq(inj.tid()));
  if (rseq.abi_pointer == 0) return ok();
  WPCKPT_TRY_ASSIGN(long r, inj.syscall(uapi::kNrRseq, rseq.abi_pointer, rseq.abi_size, uapi::kRseqFlagUnregister,
                                        rseq.signature));
  if (r < 0) return make_error(static_cast<int>(-r), "unregister inherited rseq");
  return ok();
}

// The child dies with wpckpt until it is seized (run_child_plan); from now on
// PTRACE_O_EXITKILL does that, and once detached it must outlive wpckpt.
Result<void> set_death_signal(ptrace::Injector& inj, int sig) {
  WPCKPT_TRY_ASSIGN(long r, inj.syscall(SYS_prctl, PR_SET_PDEATHSIG, static_cast<uint64_t>(sig)));
  if (r < 0) return make_error(static_cast<int>(-r), "set the parent-death signal of the new process", std::to_string(sig));
  return ok();
}

Result<void> close_in_child(ptrace::Injector& inj, const std::vector<int>& fds) {
  for (int fd : fds) {
    WPCKPT_TRY_ASSIGN(long r, inj.syscall(SYS_close, static_cast<uint64_t>(fd)));
    if (r < 0) return make_error(static_cast<int>(-r), "close helper descriptor", std::to_string(fd));
  }
  return ok();
}

// Restore needs a dump's chain (not a pre-dump's).
Result<void> check_dump(const image::ImageChain& chain) {
  if (chain.manifest().kind != image::ImageKind::Dump) {
    return make_error(EINVAL, "restore", chain.dirs().front().string() + " is a pre-dump")
        .with_hint("restore needs the image written by `wpckpt dump` (its pre-dumps are its parents)");
  }
  return ok();
}

// What the new process does for itself before it is seized (child_plan.hpp).
Result<ChildPlan> plan_child(const state::ProcessState& st, image::ImageChain& chain,
                             std::vector<std::string>& warnings, const TreeFds* tree) {
  ChildPlan plan;
  plan.pid = st.pid;
  plan.cwd = st.cwd;
  plan.root = st.root;
  plan.umask = st.umask;
  unsigned long now_personality = static_cast<unsigned long>(::personality(0xffffffff));
  if (st.personality != now_personality) {
    plan.set_personality = true;
    plan.personality = st.personality;
  }
  WPCKPT_TRY(plan_fds(st, plan, [&](const std::string& name) { return chain.read_file(name); }, tree));
  plan_limits(st, plan, warnings);
  return plan;
}

// Every file the image names, opened now as the image's owner, before anything is created.
Result<MappingFiles> open_files_as_owner(const state::ProcessState& st, image::ImageChain& chain, ChildPlan& plan,
                                         std::vector<UniqueFd>& held) {
  MappingFiles files;
  WPCKPT_TRY_ASSIGN(fds::ImageOwner owner, fds::image_owner(chain.dirs().front()));
  WPCKPT_TRY(fds::as_owner(owner, [&]() -> Result<void> {
    if (!plan.root.empty()) WPCKPT_TRY(fds::check_directory_access(plan.root, "root directory"));
    if (!plan.cwd.empty()) WPCKPT_TRY(fds::check_directory_access(plan.cwd, "working directory"));
    WPCKPT_TRY(open_fd_files(plan, held));
    WPCKPT_TRY_ASSIGN(files, open_mapping_files(st, plan, held));
    return ok();
  }));
  return files;
}

// The seized main thread rebuilds the address space and fills it from the
// chain, then drops the descriptors only restore needed.
Result<FillStats> rebuild_address_space(ptrace::Injector& inj, const state::ProcessState& st, image::ImageChain& chain,
                                        const MappingFiles& files, const std::vector<int>& helpers,
                                        const RestoreOptions& options, RestoreReport& report) {
  WPCKPT_TRY(drop_inherited_rseq(inj));
  // --lazy: the death signal stays until all memory is in (lazy_restore.hpp).
  if (!options.lazy) WPCKPT_TRY(set_death_signal(inj, 0));
  WPCKPT_TRY(build_mappings(inj, st, files));
  FillStats fill;
  if (options.lazy) {
    WPCKPT_TRY_ASSIGN(report.lazy, LazyRestore::start(inj, chain, st, fill, options.pages_complete));
  } else {
    const std::vector<state::Mapping> mappings = regular_mappings(st);
    // Unregistered (destroyed) before anything else runs in the process.
    std::unique_ptr<UffdFill> uffd = UffdFill::start(inj, st.pid, mappings);
    WPCKPT_TRY_ASSIGN(fill, fill_memory(chain, inj.mem_fd(), uffd.get(), mappings, options.progress));
    if (options.pages_complete) options.pages_complete();
  }
  WPCKPT_TRY(finish_mm(inj, st, files));
  WPCKPT_TRY(close_in_child(inj, helpers));
  if (auto r = recreate_agent_link(inj, st); !r) {
    report.warnings.push_back("the restored process cannot be pre-dumped again: " + r.error().message());
  }
  return fill;
}

// The other threads with their tids, every thread registered and given its
// credentials (last: everything before needed the restorer's privileges),
// then its registers. Returns the tids in st.threads order.
Result<std::vector<pid_t>> restore_threads(ptrace::Injector& inj, const state::ProcessState& st,
                                           const CredentialSwitch& creds, const std::function<void(pid_t)>& created,
                                           const LazyRestore* lazy) {
  WPCKPT_TRY_ASSIGN(std::vector<pid_t> tids, create_threads(inj, st));
  for (pid_t t : tids) created(t);
  WPCKPT_TRY(queue_shared_signals(inj, st));
  WPCKPT_TRY(restore_timers(inj, st));  // a SIGEV_THREAD_ID timer names a thread: after create_threads
  for (size_t i = 0; i < st.threads.size(); ++i) {
    if (st.threads[i].is_main) {
      WPCKPT_TRY(register_thread(inj, st.pid, st.threads[i]));
      continue;
    }
    WPCKPT_TRY_ASSIGN(auto thread_inj, ptrace::Injector::prepare(tids[i]));
    WPCKPT_TRY(register_thread(*thread_inj, st.pid, st.threads[i]));
    WPCKPT_TRY(switch_credentials(*thread_inj, creds));
    WPCKPT_TRY(thread_inj->cure());
  }
  WPCKPT_TRY(switch_credentials(inj, creds));
  if (lazy) WPCKPT_TRY(lazy->arm_death_signal(inj));  // a change of credentials cleared it
  WPCKPT_TRY(inj.cure());
  for (size_t i = 0; i < st.threads.size(); ++i) WPCKPT_TRY(set_thread_state(tids[i], st.threads[i]));
  return tids;
}

void detach_threads(const std::vector<pid_t>& tids) {
  for (pid_t t : tids) {
    if (::ptrace(PTRACE_DETACH, t, nullptr, nullptr) != 0)
      log::warn("detach thread {} of restored process: {}", t, std::strerror(errno));
  }
}

// The connections flow again (their sockets exist, or are closed on purpose).
// The process runs already: a lock that cannot be removed is a warning.
void unlock_connections(pid_t dumped_pid, std::vector<std::string>& warnings) {
  auto removed = netlock::unlock(dumped_pid);
  if (!removed)
    warnings.push_back(removed.error().message() + " (remove it with: nft delete table inet " +
                       netlock::table_name(dumped_pid) + ")");
}

}  // namespace wpckpt::restore
