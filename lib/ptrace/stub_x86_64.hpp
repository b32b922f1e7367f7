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

// The recovery block, at a fixed offset from the code (the code addresses it
// rip-relative): r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
// (user_regs_struct order), eflags, rsp, rip, signal mask.
constexpr uint64_t kBlockOffset = 0x7f00;
constexpr size_t kBlockWords = 19;
constexpr size_t kAreaSize = 0x8000;  // code + caller data + block

}  // namespace wpckpt::ptrace::stub
