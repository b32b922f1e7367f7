#include "lib/probe/process_probes.hpp"

#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lib/base/parse_number.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/netlock/network_lock.hpp"
#include "lib/probe/capabilities.hpp"

namespace wpckpt::probe {
namespace {

using namespace wpckpt::uapi;

std::string errno_text(const char* what, int err) {
  const char* name = strerrorname_np(err);
  return std::string(name ? name : "errno") + " from " + what;
}

ProbeOutcome outcome_of(long rc, const char* what) {
  if (rc >= 0) return {true, "ok"};
  return {false, errno_text(what, errno)};
}

// A child that only waits to be killed; reaped on scope exit.
struct SleepingChild {
  SleepingChild() {
    pid = fork();
    if (pid == 0) {
      for (;;) pause();
    }
  }
  ~SleepingChild() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  pid_t pid = -1;
};

// Seize + interrupt a child, then run `inspect` on it while it is stopped.
template <typename Inspect>
ProbeOutcome with_seized_child(Inspect inspect) {
  SleepingChild child;
  if (child.pid < 0) return {false, errno_text("fork", errno)};
  if (ptrace(static_cast<__ptrace_request>(kPtraceSeize), child.pid, nullptr, nullptr) != 0)
    return {false, errno_text("PTRACE_SEIZE", errno)};
  if (ptrace(static_cast<__ptrace_request>(kPtraceInterrupt), child.pid, nullptr, nullptr) != 0)
    return {false, errno_text("PTRACE_INTERRUPT", errno)};
  int status = 0;
  if (waitpid(child.pid, &status, 0) != child.pid) return {false, errno_text("waitpid", errno)};
  if (!WIFSTOPPED(status) || (status >> 16) != kPtraceEventStop)
    return {false, "the seized child did not report PTRACE_EVENT_STOP"};
  ProbeOutcome o = inspect(child.pid);
  ptrace(PTRACE_DETACH, child.pid, nullptr, nullptr);
  return o;
}

// Runs `body` in a forked child and reports its exit code (0 = present;
// otherwise the errno it met). Used for calls that change the caller's mm.
template <typename Body>
ProbeOutcome in_child(const char* what, Body body) {
  pid_t pid = fork();
  if (pid < 0) return {false, errno_text("fork", errno)};
  if (pid == 0) _exit(body());
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return {false, errno_text("waitpid", errno)};
  if (!WIFEXITED(status)) return {false, std::string(what) + ": the probe child died"};
  int code = WEXITSTATUS(status);
  if (code == 0) return {true, "ok"};
  return {false, errno_text(what, code)};
}

// PR_SET_MM_MAP with the values the process already has (the check the kernel
// makes is what matters); read from /proc/self/stat in the child.
int set_mm_map_identity() {
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return EIO;
  std::istringstream fields(text.substr(paren + 2));
  std::vector<std::string> f{"", ""};  // fields 1 and 2 end at the last ')'; f[n - 1] is field n
  for (std::string s; fields >> s;) f.push_back(s);
  if (f.size() < 51) return EIO;
  bool parsed = true;
  auto field = [&](int n) {
    auto v = parse_number<uint64_t>(f[static_cast<size_t>(n - 1)]);
    parsed = parsed && v;
    return v ? *v : 0;
  };
  std::ifstream auxv_file("/proc/self/auxv", std::ios::binary);
  std::vector<char> auxv((std::istreambuf_iterator<char>(auxv_file)), std::istreambuf_iterator<char>());
  PrctlMmMap map{};
  map.start_code = field(26);
  map.end_code = field(27);
  map.start_stack = field(28);
  map.start_data = field(45);
  map.end_data = field(46);
  map.start_brk = field(47);
  map.arg_start = field(48);
  map.arg_end = field(49);
  map.env_start = field(50);
  map.env_end = field(51);
  map.brk = static_cast<uint64_t>(syscall(SYS_brk, 0));
  map.auxv = reinterpret_cast<uint64_t>(auxv.data());
  map.auxv_size = static_cast<uint32_t>(auxv.size());
  map.exe_fd = static_cast<uint32_t>(-1);
  if (!parsed) return EIO;
  if (prctl(kPrSetMm, kPrSetMmMap, &map, sizeof map, 0) != 0) return errno;
  return 0;
}

ProbeOutcome probe_bpf(uint32_t prog_type) {
  // r0 = 0; exit
  struct bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[0].dst_reg = BPF_REG_0;
  insns[1].code = BPF_JMP | BPF_EXIT;
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.prog_type = prog_type;
  attr.insns = reinterpret_cast<uint64_t>(insns);
  attr.insn_cnt = 2;
  attr.license = reinterpret_cast<uint64_t>("GPL");
  long fd = syscall(kNrBpf, BPF_PROG_LOAD, &attr, sizeof attr);
  ProbeOutcome o = outcome_of(fd, "bpf(BPF_PROG_LOAD)");
  if (fd >= 0) close(static_cast<int>(fd));
  return o;
}

}  // namespace

std::vector<FeatureProbe> process_probes() {
  std::vector<FeatureProbe> probes;
  probes.push_back({"pidfd_open", "pidfd_open(2)",
                    "the tool cannot reach the agent's userfaultfd: pre-dump and dump refuse", true, [] {
                      long fd = syscall(kNrPidfdOpen, getpid(), 0);
                      ProbeOutcome o = outcome_of(fd, "pidfd_open");
                      if (fd >= 0) close(static_cast<int>(fd));
                      return o;
                    }, {"pre-dump", "dump"}});
  probes.push_back({"pidfd_getfd", "pidfd_getfd(2): copy a descriptor out of another process",
                    "the tool cannot take a copy of the agent's userfaultfd: pre-dump and dump refuse", true, [] {
                      UniqueFd pidfd(static_cast<int>(syscall(kNrPidfdOpen, getpid(), 0)));
                      if (!pidfd) return ProbeOutcome{false, errno_text("pidfd_open", errno)};
                      long fd = syscall(kNrPidfdGetfd, pidfd.get(), pidfd.get(), 0);
                      ProbeOutcome o = outcome_of(fd, "pidfd_getfd");
                      if (fd >= 0) close(static_cast<int>(fd));
                      return o;
                    }, {"pre-dump", "dump"}});
  probes.push_back({"process_vm_readv", "process_vm_readv(2)", "pages are read through /proc/PID/mem (slower)", false,
                    [] {
                      char src[64] = "wpckpt", dst[64] = {};
                      iovec local{dst, sizeof dst}, remote{src, sizeof src};
                      long n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
                      if (n != static_cast<long>(sizeof dst)) return outcome_of(-1, "process_vm_readv");
                      if (std::strcmp(dst, "wpckpt") != 0) return ProbeOutcome{false, "read back wrong bytes"};
                      return ProbeOutcome{true, "ok"};
                    }});
  probes.push_back({"ptrace_seize", "PTRACE_SEIZE + PTRACE_INTERRUPT of a child",
                    "no freeze, no syscall injection: dump and restore refuse", true,
                    [] { return with_seized_child([](pid_t) { return ProbeOutcome{true, "ok"}; }); },
                    {"dump", "restore"}});
  probes.push_back({"ptrace_rseq_configuration", "PTRACE_GET_RSEQ_CONFIGURATION",
                    "the threads' rseq registrations cannot be read: dump and restore refuse", false, [] {
                      return with_seized_child([](pid_t pid) {
                        PtraceRseqConfiguration conf{};
                        long rc = ptrace(static_cast<__ptrace_request>(kPtraceGetRseqConfiguration), pid,
                                         reinterpret_cast<void*>(sizeof conf), &conf);
                        return outcome_of(rc, "PTRACE_GET_RSEQ_CONFIGURATION");
                      });
                    }, {"dump", "restore"}});
  probes.push_back({"clone3_set_tid", "clone3(2) with set_tid (restore with the same pid)",
                    "restore cannot give the process its old pid: it refuses", false, [] {
                      // Ask for our own pid: a kernel that supports set_tid and lets us
                      // use it answers EEXIST; no process is ever created.
                      pid_t wanted = getpid();
                      CloneArgs args{};
                      args.exit_signal = SIGCHLD;
                      args.set_tid = reinterpret_cast<uint64_t>(&wanted);
                      args.set_tid_size = 1;
                      long rc = syscall(kNrClone3, &args, sizeof args);
                      if (rc == 0) _exit(0);
                      if (rc > 0) {
                        waitpid(static_cast<pid_t>(rc), nullptr, 0);
                        return ProbeOutcome{false, "clone3 ignored set_tid"};
                      }
                      if (errno == EEXIST) return ProbeOutcome{true, "ok (EEXIST for a pid in use)"};
                      return outcome_of(-1, "clone3(set_tid)");
                    }, {"restore"}});
  probes.push_back({"pr_set_mm_map", "prctl(PR_SET_MM, PR_SET_MM_MAP)",
                    "restore cannot set brk, arg/env, auxv and the executable of the process: it refuses", false,
                    [] { return in_child("PR_SET_MM_MAP", set_mm_map_identity); }, {"restore"}});
  probes.push_back({"cap_checkpoint_restore", "CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN in the effective set",
                    "restore cannot choose pids or replace /proc/PID/exe: it refuses", false, [] {
                      bool ok = has_effective_capability(kCapCheckpointRestore) || has_effective_capability(kCapSysAdmin);
                      return ProbeOutcome{ok, ok ? "ok" : "capability not in the effective set"};
                    }, {"restore"}});
  probes.push_back({"cap_sys_resource", "CAP_SYS_RESOURCE in the effective set",
                    "restore cannot raise a hard rlimit above its current value (it keeps the current one and warns)",
                    false, [] {
                      bool ok = has_effective_capability(kCapSysResource);
                      return ProbeOutcome{ok, ok ? "ok" : "capability not in the effective set"};
                    }});
  probes.push_back({"timer_create_restore_ids", "prctl(PR_TIMER_CREATE_RESTORE_IDS): timer_create with a chosen id",
                    "restore refuses an image of a process with POSIX timers (timer_create): it cannot give them "
                    "their old ids",
                    false, [] {
                      long rc = syscall(SYS_prctl, kPrTimerCreateRestoreIds, kPrTimerCreateRestoreIdsGet, 0, 0, 0);
                      return outcome_of(rc, "prctl(PR_TIMER_CREATE_RESTORE_IDS)");
                    }});
  probes.push_back({"network_lock", "nftables for --network-lock (a dry run: nothing is added)",
                    "dump --tcp-established needs --network-lock skip: a peer that sends between dump and restore "
                    "gets a reset",
                    false, [] {
                      auto r = netlock::probe();
                      return r ? ProbeOutcome{true, "ok"} : ProbeOutcome{false, r.error().message()};
                    }});
  probes.push_back({"open_by_handle_at", "open_by_handle_at(2): a file by its handle (CAP_DAC_READ_SEARCH)",
                    "dump refuses a process with inotify watches: it cannot name the watched files", false, [] {
                      std::vector<char> buf(sizeof(file_handle) + MAX_HANDLE_SZ);
                      auto* fh = reinterpret_cast<file_handle*>(buf.data());
                      fh->handle_bytes = MAX_HANDLE_SZ;
                      int mount_id = 0;
                      if (name_to_handle_at(AT_FDCWD, "/", fh, &mount_id, 0) != 0)
                        return ProbeOutcome{false, errno_text("name_to_handle_at /", errno)};
                      UniqueFd root(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
                      long fd = open_by_handle_at(root.get(), fh, O_PATH | O_CLOEXEC);
                      ProbeOutcome o = outcome_of(fd, "open_by_handle_at");
                      if (fd >= 0) close(static_cast<int>(fd));
                      return o;
                    }});
  probes.push_back({"bpf_prog_load", "loading a BPF program (socket filter)",
                    "nothing by itself: the BPF event queue is feature bpf_fault_events", false,
                    [] { return probe_bpf(BPF_PROG_TYPE_SOCKET_FILTER); }});
  probes.push_back({"bpf_tracing", "loading a BPF tracepoint program",
                    "nothing by itself: the BPF event queue is feature bpf_fault_events", false,
                    [] { return probe_bpf(BPF_PROG_TYPE_TRACEPOINT); }});
  return probes;
}

}  // namespace wpckpt::probe
