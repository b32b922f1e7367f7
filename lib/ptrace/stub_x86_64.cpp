// Assembled here only to get its bytes; never run inside wpckpt. The block
// sits 0x7f00 bytes after the code, at the top of a 32 KiB area, so that a
// signal arriving while the recovery path pops registers (rsp = block) gets
// its frame inside the area instead of below it.
#include "lib/ptrace/stub_x86_64.hpp"

extern "C" const uint8_t wpckpt_stub_begin[];
extern "C" const uint8_t wpckpt_stub_end[];

asm(R"(
        .pushsection .rodata.wpckpt_stub, "a"
        .globl wpckpt_stub_begin
        .globl wpckpt_stub_end
        .hidden wpckpt_stub_begin
        .hidden wpckpt_stub_end
        .set wpckpt_stub_block, wpckpt_stub_begin + 0x7f00
wpckpt_stub_begin:
        syscall
        movl $14, %eax              # rt_sigprocmask(SIG_SETMASK, &block.mask, NULL, 8)
        movl $2, %edi
        leaq wpckpt_stub_block+144(%rip), %rsi
        xorl %edx, %edx
        movl $8, %r10d
        syscall
        leaq wpckpt_stub_block(%rip), %rsp
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbp
        popq %rbx
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rax
        popq %rcx
        popq %rdx
        popq %rsi
        popq %rdi
        popfq
        movq wpckpt_stub_block+128(%rip), %rsp
        jmpq *wpckpt_stub_block+136(%rip)
wpckpt_stub_end:
        .popsection
)");

namespace wpckpt::ptrace::stub {

std::span<const uint8_t> code() {
  return {wpckpt_stub_begin, static_cast<size_t>(wpckpt_stub_end - wpckpt_stub_begin)};
}

}  // namespace wpckpt::ptrace::stub
