// The process state a dump captures and a restore consumes: every thread,
// signal handlers, mm fields, credentials, limits, mappings and file
// descriptors. Serialized as JSON into the image file "process.json"
// (dump-format/FORMAT.md, "Process state"); binary blobs (XSAVE, siginfo,
// pipe data, the vdso image) are lowercase hex strings.
//
// Compatibility rule: fields are only ever added, with a default; a reader
// refuses a process.json whose `state_version` is newer than it knows.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/state/fd_kind.hpp"
#include "tracker/memory_kind.hpp"

namespace wpckpt::state {

constexpr uint32_t kStateVersion = 1;
constexpr const char* kProcessStateFile = "process.json";

// x86_64 struct user_regs_struct, in kernel order (27 x u64).
struct Registers {
  uint64_t r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags,
      rsp, ss, fs_base, gs_base, ds, es, fs, gs;
};
static_assert(sizeof(Registers) == 216);

struct RseqState {
  uint64_t abi_pointer = 0;  // 0: not registered
  uint32_t abi_size = 0;
  uint32_t signature = 0;
};

// sigaltstack(2) of a thread; flags SS_DISABLE (2) when it has none.
struct AltStack {
  uint64_t sp = 0;
  int32_t flags = 2;
  uint64_t size = 0;
};

struct ThreadState {
  int tid = 0;
  bool is_main = false;
  Registers regs{};
  std::vector<uint8_t> xsave;                  // NT_X86_XSTATE, full size
  uint64_t sigmask = 0;                        // blocked set, bit n-1 = signal n
  std::vector<std::vector<uint8_t>> pending;   // private queue, raw 128-byte siginfo each
  RseqState rseq;
  uint64_t clear_child_tid = 0;                // set_tid_address value if known (0 otherwise)
  AltStack altstack;
  std::string name;                            // PR_GET_NAME (the main thread's is the process's comm)
};

struct SignalAction {
  int signo = 0;
  uint64_t handler = 0, flags = 0, restorer = 0, mask = 0;  // kernel struct sigaction
};

struct MmFields {
  uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
  uint64_t start_brk = 0, brk = 0, start_stack = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
  std::vector<uint64_t> auxv;  // pairs, AT_NULL terminated
  std::string exe_path;
  uint64_t exe_dev = 0, exe_inode = 0;
};

struct Credentials {
  uint32_t uid = 0, euid = 0, suid = 0, fsuid = 0;
  uint32_t gid = 0, egid = 0, sgid = 0, fsgid = 0;
  std::vector<uint32_t> groups;
  uint64_t cap_effective = 0, cap_permitted = 0, cap_inheritable = 0, cap_bounding = 0, cap_ambient = 0;
  uint32_t securebits = 0;
  bool no_new_privs = false;
  int dumpable = 1;  // prctl(PR_GET_DUMPABLE); 0 for e.g. ssh-agent, which turns dumping off
};

struct Rlimit {
  int resource = 0;
  uint64_t cur = 0, max = 0;  // RLIM_INFINITY as ~0
};

// Identity of a file, checked again at restore.
struct FileIdentity {
  std::string path;
  uint64_t dev = 0, inode = 0, size = 0;
  int64_t mtime_ns = 0;
  bool deleted = false;  // "(deleted)" in /proc: the path no longer names it
};

struct Mapping {
  uint64_t start = 0, end = 0;
  uint32_t prot = 0;           // PROT_*
  bool shared = false;         // MAP_SHARED vs MAP_PRIVATE
  tracker::MemoryKind kind = tracker::MemoryKind::Anon;  // written by its name ("anon", "file", "shmem", ...)
  std::string name;            // as /proc/PID/maps shows it, may be empty
  uint64_t file_offset = 0;
  std::optional<FileIdentity> file;
  std::vector<std::string> vm_flags;                  // smaps VmFlags, e.g. "gd" (growsdown), "lo", "hg"
  std::vector<std::pair<uint64_t, uint64_t>> guards;  // guard regions inside it, [start, end)

  bool has_vm_flag(std::string_view flag) const {
    return std::find(vm_flags.begin(), vm_flags.end(), flag) != vm_flags.end();
  }
};

// One open file description behind a descriptor number.
struct FdState {
  int fd = 0;
  bool cloexec = false;
  FdKind kind = FdKind::File;  // process.json: its name (fd_kind.hpp)
  int flags = 0;               // O_* status flags from /proc/PID/fdinfo
  uint64_t pos = 0;
  std::optional<FileIdentity> file;
  uint64_t object_id = 0;      // equal for descriptors sharing one description (dup) or one pipe
  // A process tree's: equal across its processes for descriptors sharing one
  // open file description (inherited by fork); 0 when no other process has it.
  uint64_t shared_id = 0;
  nlohmann::json details = nlohmann::json::object();  // kind-specific: pipe end + data, eventfd count, timer, ...
};

// An armed interval timer (setitimer/alarm): the time left at the dump and
// the reload interval. Restore arms it relative to its own start, so the
// time the process did not exist does not count.
struct IntervalTimer {
  int which = 0;  // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
  int64_t value_sec = 0, value_usec = 0;
  int64_t interval_sec = 0, interval_usec = 0;
};

// A SysV shared memory segment the process has attached (its mappings are
// kind shmem, named "/SYSV<key> (deleted)", file inode = id; the bytes are
// in the image like other shared memory). Restore makes the segment again
// with this id and key (or finds it still there) and attaches it where it
// was; `removed`: IPC_RMID was called, it goes away with its last detach.
struct SysvShm {
  int id = 0;
  int32_t key = 0;  // key_t; 0 is IPC_PRIVATE
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits
  uint32_t uid = 0, gid = 0;
  bool removed = false;
};

// A POSIX timer (timer_create): /proc/PID/timers and an injected
// timer_gettime. Restore re-creates it with the same id (the program holds it).
struct PosixTimer {
  int id = 0;
  int clock = 0;           // clockid_t, negative for CPU clocks of a pid/tid
  int signo = 0;
  uint64_t sigev_value = 0;
  int notify = 0;          // SIGEV_SIGNAL (0), SIGEV_NONE (1), SIGEV_THREAD_ID (4)
  int notify_tid = 0;      // SIGEV_THREAD_ID: the thread signalled
  int64_t value_sec = 0, value_nsec = 0;  // time left; 0 = disarmed
  int64_t interval_sec = 0, interval_nsec = 0;
  int overrun = 0;         // timer_getoverrun at the dump (informative: no call sets it)
};

struct ProcessState {
  uint32_t state_version = kStateVersion;
  int pid = 0;
  int ppid = 0;
  int pgid = 0, sid = 0;
  std::string comm;
  std::vector<ThreadState> threads;   // main thread first
  std::vector<SignalAction> sigactions;
  std::vector<std::vector<uint8_t>> shared_pending;  // raw siginfo
  MmFields mm;
  std::string cwd, root;
  uint32_t umask = 022;
  std::vector<Rlimit> rlimits;
  Credentials creds;
  uint64_t personality = 0;
  // prctl(PR_GET_PDEATHSIG) of the main thread: restored for a tree's
  // members (their parent is restored too), not for the root, whose parent
  // is not.
  int pdeath_signal = 0;
  uint64_t xcr0 = 0;                  // XSAVE features in use; restore refuses a CPU lacking any
  uint32_t xsave_size = 0;
  std::vector<uint8_t> vdso_image;    // bytes of [vdso] at dump: restore refuses another image
  std::vector<Mapping> mappings;      // address order
  std::vector<FdState> fds;           // fd order
  std::vector<IntervalTimer> itimers;  // armed ones only
  std::vector<PosixTimer> posix_timers;  // id order
  std::vector<SysvShm> sysv_shm;         // id order
  nlohmann::json tracking = nlohmann::json::object();  // what the tracker wants restore to know
};

nlohmann::json to_json(const ProcessState& state);
Result<ProcessState> from_json(const nlohmann::json& doc);
Result<ProcessState> parse(std::span<const std::byte> bytes);
// Fails (EILSEQ) for a name or path that is not valid UTF-8.
Result<std::string> serialize(const ProcessState& state);

std::string to_hex(std::span<const uint8_t> bytes);
bool from_hex(const std::string& text, std::vector<uint8_t>& out);

}  // namespace wpckpt::state
