// Per-thread CPU and signal state of a ptrace-stopped thread (x86_64):
// general registers (NT_PRSTATUS), the full XSAVE area (NT_X86_XSTATE), the
// blocked signal mask, the pending signal queues and the rseq registration.
// Every call needs `tid` in a ptrace-stop, traced by the calling thread.
// docs/KERNEL.md §7.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::ptrace {

using Registers = struct user_regs_struct;  // 216 bytes, kernel order

Result<Registers> get_regs(pid_t tid);
Result<void> set_regs(pid_t tid, const Registers& regs);

// Size of the standard-format XSAVE area this CPU uses for the features
// enabled in XCR0 (CPUID leaf 0xD sub-leaf 0 EBX), and XCR0 itself.
uint32_t xsave_size();
uint64_t xcr0();

// NT_X86_XSTATE, always xsave_size() bytes (a smaller buffer would be
// silently truncated by GETREGSET and refused by SETREGSET).
Result<std::vector<uint8_t>> get_xsave(pid_t tid);
Result<void> set_xsave(pid_t tid, const std::vector<uint8_t>& xsave);

// Blocked set, bit n-1 = signal n.
Result<uint64_t> get_sigmask(pid_t tid);
Result<void> set_sigmask(pid_t tid, uint64_t mask);

// Pending signals without dequeuing them: the thread's own queue, or the
// process-wide queue (`shared`). Each entry is a raw 128-byte siginfo.
constexpr size_t kSiginfoSize = 128;
Result<std::vector<std::vector<uint8_t>>> peek_pending(pid_t tid, bool shared);

struct RseqConfig {
  uint64_t abi_pointer = 0;  // 0: the thread has no rseq area
  uint32_t abi_size = 0;
  uint32_t signature = 0;
  uint32_t flags = 0;
};
Result<RseqConfig> get_rseq(pid_t tid);

// CRIU's rseq fix-up: a thread stopped inside an rseq critical section would
// have its IP moved to the abort handler by the kernel on return to user
// mode. Reads the rseq area's rseq_cs descriptor from the target's memory
// and, if `regs.rip` lies in [start_ip, start_ip + post_commit_offset),
// sets rip to abort_ip and returns true. `mem_fd` is /proc/PID/mem.
Result<bool> rseq_fixup_ip(int mem_fd, const RseqConfig& rseq, Registers& regs);

// Reads or writes target memory through /proc/PID/mem (works on read-only
// and not-yet-populated pages; needs ptrace access).
Result<void> read_memory(int mem_fd, uint64_t addr, void* out, size_t len);
Result<void> write_memory(int mem_fd, uint64_t addr, const void* data, size_t len);

}  // namespace wpckpt::ptrace
