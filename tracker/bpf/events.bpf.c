// SPDX-License-Identifier: GPL-2.0
/* The event queue's kernel side: write faults and address-space changes of
 * one process, as records in a ring buffer (event_record.h). Built with
 * clang -target bpf against a vmlinux.h generated from this machine's BTF
 * (CO-RE), loaded by events_loader.c.
 *
 * Attach points, chosen by measurement (KERNEL-FACTS section 12): fentry,
 * kprobes and tracefs tracepoints do not work here; BTF tracepoints do.
 *  - page_fault_user / page_fault_kernel: every write fault of a thread
 *    using the target's mm (its threads, io_uring workers, a vfork child),
 *    in user mode or in the kernel (read(2) into a protected page).
 *  - sys_exit: the target's address-space changes, with their results.
 *  - sched_process_exec: the target replaced its address space.
 *  - mmap_lock_acquire_returned: another process locked the target's mm
 *    (process_vm_writev, /proc/PID/mem, ptrace pokes write that way without
 *    a fault); it also tells us the target's mm at start.
 * Everything is filtered by mm (or tgid) first: other processes pay a load
 * and a compare. The target never waits: a write fault takes a slot of its
 * CPU's ring (no lock, no wake-up), a change a ring buffer record; either is
 * dropped (and counted) when its ring is full.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "event_record.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;
const volatile __u32 self_tgid = 0; /* the reader: its own accesses are reads */

struct wpckpt_event_counters counters = {};

/* Address-space changes. */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Write faults: a ring per CPU (event_record.h); the loader sets
 * max_entries to the number of possible CPUs. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct wpckpt_fault_ring);
  __uint(max_entries, 1);
} fault_rings SEC(".maps");

#define USER_ADDR_LIMIT (1ull << 56)
#define ERR_WRITE 2ul
#define O_DIRECT_FLAG 040000
#define F_SETFL_CMD 4
#define CLONE_THREAD_FLAG 0x00010000ull
#define UFFD_IOCTL_TYPE 0xAA
#define KVM_IOCTL_TYPE 0xAE
#define VFIO_IOCTL_TYPE 0x3B

/* x86_64 system call numbers */
enum {
  NR_open = 2, NR_mmap = 9, NR_mprotect = 10, NR_munmap = 11, NR_brk = 12, NR_ioctl = 16,
  NR_mremap = 25, NR_madvise = 28, NR_clone = 56, NR_fork = 57, NR_vfork = 58, NR_fcntl = 72,
  NR_io_setup = 206, NR_io_submit = 209, NR_openat = 257, NR_vmsplice = 278,
  NR_process_vm_writev = 311, NR_io_uring_setup = 425, NR_io_uring_register = 427,
  NR_clone3 = 435, NR_openat2 = 437, NR_process_madvise = 440,
};

static __always_inline __u64 target_mm(void) { return counters.target_mm; }

static __always_inline int current_uses_target_mm(void) {
  __u64 mm = target_mm();
  struct task_struct *cur = bpf_get_current_task_btf();
  return mm != 0 && (__u64)cur->mm == mm;
}

static __always_inline void emit_change(__u32 kind, __u64 addr, __u64 len, __u64 addr2, __u64 len2, __u32 detail) {
  __sync_fetch_and_add(&counters.changes, 1);
  struct wpckpt_change_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
  if (!r) {
    __sync_fetch_and_add(&counters.lost, 1);
    return;
  }
  r->addr_kind = (addr & ~WPCKPT_EV_KIND_MASK) | kind;
  r->time_ns = bpf_ktime_get_ns();
  r->tid = (__u32)bpf_get_current_pid_tgid();
  r->detail = detail;
  r->len = len;
  r->addr2 = addr2;
  r->len2 = len2;
  /* Changes are rare and the reader wants them soon. */
  bpf_ringbuf_submit(r, 0);
}

static __always_inline int on_fault(unsigned long address, unsigned long error_code) {
  if (!(error_code & ERR_WRITE) || address >= USER_ADDR_LIMIT) return 0;
  if (!current_uses_target_mm()) return 0;
  __u32 cpu = bpf_get_smp_processor_id();
  struct wpckpt_fault_ring *ring = bpf_map_lookup_elem(&fault_rings, &cpu);
  if (!ring || *(volatile __u64 *)&ring->head - *(volatile __u64 *)&ring->tail >= WPCKPT_FAULT_RING_SLOTS) {
    __sync_fetch_and_add(&counters.lost, 1);
    return 0;
  }
  __u64 idx = __sync_fetch_and_add(&ring->head, 1);
  struct wpckpt_fault_slot *s = &ring->slots[idx & (WPCKPT_FAULT_RING_SLOTS - 1)];
  *(volatile __u64 *)&s->seq = 0; /* a reader still copying the slot's old record sees it change */
  asm volatile("" ::: "memory");
  s->rec.addr_kind = (address & ~0xfffull) | WPCKPT_EV_WRITE_FAULT;
  s->rec.time_ns = bpf_ktime_get_ns();
  s->rec.tid = (__u32)bpf_get_current_pid_tgid();
  s->rec.error_code = (__u32)error_code;
  asm volatile("" ::: "memory"); /* the record before its sequence number */
  *(volatile __u64 *)&s->seq = idx + 1;
  return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(wpckpt_fault_user, unsigned long address, struct pt_regs *regs, unsigned long error_code) {
  return on_fault(address, error_code);
}

SEC("tp_btf/page_fault_kernel")
int BPF_PROG(wpckpt_fault_kernel, unsigned long address, struct pt_regs *regs, unsigned long error_code) {
  return on_fault(address, error_code);
}

/* madvise advice values that leave page contents alone. */
static __always_inline int advice_keeps_contents(__u64 advice) {
  switch (advice) {
    case 0: case 1: case 2: case 3:  /* NORMAL RANDOM SEQUENTIAL WILLNEED */
    case 10: case 11: case 12: case 13: case 14: case 15: case 16: case 17:  /* fork, KSM, THP, dump flags */
    case 19: case 20: case 22: case 23:  /* KEEPONFORK COLD POPULATE_READ POPULATE_WRITE */
      return 1;
    default:
      return 0;
  }
}

SEC("tp_btf/sys_exit")
int BPF_PROG(wpckpt_sys_exit, struct pt_regs *regs, long ret) {
  if (!current_uses_target_mm()) return 0;
  long id = BPF_CORE_READ(regs, orig_ax);
  __u64 a0 = BPF_CORE_READ(regs, di), a1 = BPF_CORE_READ(regs, si), a2 = BPF_CORE_READ(regs, dx);
  switch (id) {
    case NR_madvise:
      /* Recorded even when it failed: a madvise over a hole applies to the
       * mapped parts and still returns ENOMEM. */
      if (!advice_keeps_contents(a2)) emit_change(WPCKPT_EV_DISCARD, a0, a1, 0, 0, (__u32)a2);
      break;
    case NR_mremap:
      emit_change(WPCKPT_EV_REMAP, a0, a1, ret < 0 ? 0 : (__u64)ret, a2, 0);
      break;
    case NR_mmap:
      if (ret >= 0) emit_change(WPCKPT_EV_MAP, (__u64)ret, a1, 0, 0, NR_mmap);
      break;
    case NR_munmap:
    case NR_mprotect:
      if (ret == 0) emit_change(WPCKPT_EV_MAP, a0, a1, 0, 0, (__u32)id);
      break;
    case NR_brk:
      emit_change(WPCKPT_EV_MAP, (__u64)ret, 0, 0, 0, NR_brk);
      break;
    case NR_clone:
      if (ret > 0 && !(a0 & CLONE_THREAD_FLAG)) emit_change(WPCKPT_EV_FORK, 0, 0, 0, 0, (__u32)ret);
      break;
    case NR_clone3: {
      __u64 flags = 0;
      bpf_probe_read_user(&flags, sizeof(flags), (void *)a0);
      if (ret > 0 && !(flags & CLONE_THREAD_FLAG)) emit_change(WPCKPT_EV_FORK, 0, 0, 0, 0, (__u32)ret);
      break;
    }
    case NR_fork:
    case NR_vfork:
      if (ret > 0) emit_change(WPCKPT_EV_FORK, 0, 0, 0, 0, (__u32)ret);
      break;
    /* Ways to have memory written without a fault in the target's name. */
    case NR_open:
      if (ret >= 0 && (a1 & O_DIRECT_FLAG)) emit_change(WPCKPT_EV_PINNING, 0, 0, 0, 0, (__u32)id);
      break;
    case NR_openat:
      if (ret >= 0 && (a2 & O_DIRECT_FLAG)) emit_change(WPCKPT_EV_PINNING, 0, 0, 0, 0, (__u32)id);
      break;
    case NR_openat2: {
      __u64 flags = 0;
      bpf_probe_read_user(&flags, sizeof(flags), (void *)a2);
      if (ret >= 0 && (flags & O_DIRECT_FLAG)) emit_change(WPCKPT_EV_PINNING, 0, 0, 0, 0, (__u32)id);
      break;
    }
    case NR_fcntl:
      if (ret >= 0 && a1 == F_SETFL_CMD && (a2 & O_DIRECT_FLAG)) emit_change(WPCKPT_EV_PINNING, 0, 0, 0, 0, (__u32)id);
      break;
    case NR_ioctl: {
      /* The program's own userfaultfd (UFFDIO_COPY, ZEROPAGE, MOVE...);
       * KVM (a guest writes memory through get_user_pages, never faulting
       * in the host process); VFIO (device DMA). */
      __u64 type = (a1 >> 8) & 0xff;
      if (type == UFFD_IOCTL_TYPE || type == KVM_IOCTL_TYPE || type == VFIO_IOCTL_TYPE)
        emit_change(WPCKPT_EV_PINNING, 0, 0, 0, (__u32)type, (__u32)id);
      break;
    }
    case NR_io_setup:
    case NR_io_submit:
    case NR_vmsplice:
    case NR_process_vm_writev:
    case NR_io_uring_setup:
    case NR_io_uring_register:
    case NR_process_madvise:
      if (ret >= 0) emit_change(WPCKPT_EV_PINNING, 0, 0, 0, 0, (__u32)id);
      break;
    default:
      break;
  }
  return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(wpckpt_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) {
  if (BPF_CORE_READ(p, tgid) != target_tgid) return 0;
  emit_change(WPCKPT_EV_EXEC, 0, 0, 0, 0, 0);
  return 0;
}

SEC("tp_btf/mmap_lock_acquire_returned")
int BPF_PROG(wpckpt_mmap_lock, struct mm_struct *mm, bool write, bool success) {
  __u64 known = target_mm();
  if (known == 0) {
    /* Learn the target's mm: the reader reads /proc/PID/cmdline right after
     * attaching, which locks it. */
    struct task_struct *owner = BPF_CORE_READ(mm, owner);
    if (owner && BPF_CORE_READ(owner, tgid) == target_tgid) __sync_val_compare_and_swap(&counters.target_mm, 0, (__u64)mm);
    return 0;
  }
  if ((__u64)mm != known || !success) return 0;
  struct task_struct *cur = bpf_get_current_task_btf();
  __u64 cur_mm = (__u64)cur->mm;
  /* Kernel threads (khugepaged, compaction) keep contents; the target's own
   * threads fault normally; the reader only reads. */
  if (cur_mm == 0 || cur_mm == known) return 0;
  __u32 tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
  if (tgid == self_tgid) return 0;
  emit_change(WPCKPT_EV_FOREIGN, 0, 0, 0, 0, write);
  return 0;
}
