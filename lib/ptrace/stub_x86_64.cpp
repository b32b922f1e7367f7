// Assembled here only to get its bytes; never run inside wpckpt. The block
// sits 0x7f00 bytes after the code, at the top of a 32 KiB area, so that a
// signal arriving while the recovery path pops registers (rsp = block) gets
// its frame inside the area instead of below it.
#include "lib/ptrace/stub_x86_64.hpp"

extern "C" const uint8_t wpckpt_stub_begin[];
extern "C" const uint8_t wpckpt_stub_end[];
extern "C" const uint8_t wpckpt_stub_batch[];

asm(R"(
        .pushsection .rodata.wpckpt_stub, "a"
        .globl wpckpt_stub_begin
        .globl wpckpt_stub_end
        .globl wpckpt_stub_batch
        .hidden wpckpt_stub_begin
        .hidden wpckpt_stub_end
        .hidden wpckpt_stub_batch
        .set wpckpt_stub_block, wpckpt_stub_begin + 0x7f00
wpckpt_stub_begin:
        syscall
wpckpt_stub_recovery:
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
        # The batch: r12 = table of {nr, a0..a5, result} entries, r13 = their
        # number, r14 = the done flag, r15 = the wait's timeout.
wpckpt_stub_batch:
        testq %r13, %r13
        jz 2f
        movq 0(%r12), %rax
        movq 8(%r12), %rdi
        movq 16(%r12), %rsi
        movq 24(%r12), %rdx
        movq 32(%r12), %r10
        movq 40(%r12), %r8
        movq 48(%r12), %r9
        syscall
        movq %rax, 56(%r12)
        addq $64, %r12
        decq %r13
        jmp wpckpt_stub_batch
2:      movq $1, (%r14)             # done: the tracer interrupts the wait below
3:      movl $271, %eax             # ppoll(NULL, 0, timeout, NULL, 8)
        xorl %edi, %edi
        xorl %esi, %esi
        movq %r15, %rdx
        xorl %r10d, %r10d
        movl $8, %r8d
        syscall
        testq %rax, %rax            # 0: timed out; anything else: wait again
        jne 3b
        movq $2, (%r14)             # nobody came: the tracer is gone
        jmp wpckpt_stub_recovery
wpckpt_stub_end:
        .popsection
)");

namespace wpckpt::ptrace::stub {

std::span<const uint8_t> code() {
  return {wpckpt_stub_begin, static_cast<size_t>(wpckpt_stub_end - wpckpt_stub_begin)};
}

uint64_t batch_offset() { return static_cast<uint64_t>(wpckpt_stub_batch - wpckpt_stub_begin); }

}  // namespace wpckpt::ptrace::stub
