// The machine code an Injector copies to the start of its scratch area, and
// the layout of the recovery block it reads (x86_64 only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace wpckpt::ptrace::stub {

// Offset 0: the injected `syscall`. Offset 2: the recovery path, reached only
// if the tracer died during an injected call.
std::span<const uint8_t> code();

constexpr uint64_t kSyscallOffset = 0;
constexpr uint64_t kRecoveryOffset = 2;  // where a `syscall` at offset 0 returns to

// The batch entry: runs a table of calls, sets the done flag to 1 and sleeps
// in ppoll until the tracer interrupts it; if the sleep times out (the
// tracer died), it sets the flag to 2 and takes the recovery path. ppoll,
// not a futex: an interrupted timed futex wait replaces the thread's restart
// block, which the syscall it was frozen in (nanosleep, poll) still needs.
uint64_t batch_offset();
constexpr size_t kBatchEntryWords = 8;  // nr, six arguments, result

// The recovery block, at a fixed offset from the code (the code addresses it
// rip-relative): r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
// (user_regs_struct order), eflags, rsp, rip, signal mask.
constexpr uint64_t kBlockOffset = 0x7f00;
constexpr size_t kBlockWords = 19;
constexpr size_t kAreaSize = 0x8000;  // code + caller data + block

}  // namespace wpckpt::ptrace::stub
