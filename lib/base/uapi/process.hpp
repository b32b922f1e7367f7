// ptrace, prctl, clone3, pidfd and rseq values that the 6.1 headers or glibc
// 2.36 lack or spell differently (docs/KERNEL.md §1, x86_64 only).
#pragma once

#include <cstdint>

namespace wpckpt::uapi {

// syscall numbers (x86_64)
constexpr long kNrPidfdOpen = 434;
constexpr long kNrPidfdGetfd = 438;
constexpr long kNrClone3 = 435;
constexpr long kNrRseq = 334;
constexpr long kNrBpf = 321;

// ptrace requests and options
constexpr long kPtraceGetregset = 0x4204;
constexpr long kPtraceSetregset = 0x4205;
constexpr long kPtraceSeize = 0x4206;
constexpr long kPtraceInterrupt = 0x4207;
constexpr long kPtraceListen = 0x4208;
constexpr long kPtracePeeksiginfo = 0x4209;
constexpr long kPtraceGetsigmask = 0x420a;
constexpr long kPtraceSetsigmask = 0x420b;
constexpr long kPtraceGetRseqConfiguration = 0x420f;
constexpr unsigned kPtracePeeksiginfoShared = 1;
constexpr int kPtraceEventStop = 128;
constexpr long kPtraceOTraceclone = 1 << 3;
constexpr long kPtraceOExitkill = 1 << 20;
constexpr int kNtPrstatus = 1;
constexpr int kNtPrfpreg = 2;
constexpr int kNtX86Xstate = 0x202;

struct PtracePeeksiginfoArgs {
  uint64_t off;
  uint32_t flags;
  int32_t nr;
};
struct PtraceRseqConfiguration {
  uint64_t rseq_abi_pointer;
  uint32_t rseq_abi_size;
  uint32_t signature;
  uint32_t flags;
  uint32_t pad;
};
static_assert(sizeof(PtraceRseqConfiguration) == 24);

// prctl
// PR_TIMER_CREATE_RESTORE_IDS (Linux 6.13+, include/uapi/linux/prctl.h): while
// on, timer_create takes the id to give from *created_timer_id (EBUSY if taken).
constexpr int kPrTimerCreateRestoreIds = 77;
constexpr unsigned long kPrTimerCreateRestoreIdsOff = 0;
constexpr unsigned long kPrTimerCreateRestoreIdsOn = 1;
constexpr unsigned long kPrTimerCreateRestoreIdsGet = 2;
constexpr int kPrSetMm = 35;
constexpr int kPrSetMmMap = 14;
constexpr int kPrSetMmMapSize = 15;
// The kernel's struct sigevent (64 bytes): the tid of SIGEV_THREAD_ID
// follows the notify field.
struct KernelSigevent {
  uint64_t value;
  int32_t signo;
  int32_t notify;
  int32_t tid;
  int32_t pad[11];
};
static_assert(sizeof(KernelSigevent) == 64);
struct PrctlMmMap {
  uint64_t start_code, end_code, start_data, end_data;
  uint64_t start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv;      // user pointer to the auxv array
  uint32_t auxv_size;
  uint32_t exe_fd;
};
static_assert(sizeof(PrctlMmMap) == 104);

// clone3
struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};
static_assert(sizeof(CloneArgs) == 88);

// capabilities
constexpr int kCapSetgid = 6;
constexpr int kCapSetuid = 7;
constexpr int kCapSetpcap = 8;
constexpr int kCapSysAdmin = 21;
constexpr int kCapSysPtrace = 19;
constexpr int kCapSysResource = 24;
constexpr int kCapCheckpointRestore = 40;

// The kernel's struct sigaction as rt_sigaction(2) reads and writes it
// (glibc's struct sigaction has a 128-byte mask and another field order).
struct KernelSigaction {
  uint64_t handler, flags, restorer, mask;
};
static_assert(sizeof(KernelSigaction) == 32);
constexpr uint32_t kSsAutodisarm = 1u << 31;  // sigaltstack flag, <linux/signal.h> only

// Syscall results: the kernel returns -errno, with errno in [1, kMaxErrno].
constexpr long kMaxErrno = 4095;
constexpr bool is_syscall_error(long result) { return result < 0 && result >= -kMaxErrno; }

// rseq
constexpr uint32_t kGlibcRseqSignature = 0x53053053;
constexpr int kRseqFlagUnregister = 1;

}  // namespace wpckpt::uapi
