/* The records the BPF programs (events.bpf.c) produce and the counters they
 * keep; shared by the BPF side (C, clang -target bpf) and the reader
 * (tracker/events/). Little-endian, this machine's layout.
 *
 * Every record starts with `addr_kind`: a page-aligned address with the
 * record kind in its low 12 bits. A write fault is 24 bytes; an
 * address-space change 48.
 *
 * Address-space changes (rare) go into a BPF ring buffer. Write faults go
 * into a ring per CPU in an mmapable array map (struct wpckpt_fault_ring):
 * bpf_ringbuf_reserve takes a spinlock with interrupts off, which on this
 * paravirtualized guest added ~1.8 us to each ~15 us fault; a slot of the
 * CPU's own ring costs a few plain stores and one atomic add, +0.15 us
 * (docs/KERNEL.md §12). The protocol, a single
 * reader, each ring written from its own CPU only (a BPF program does not
 * migrate, but may be preempted by another writer on the same CPU):
 *   writer: full if head - tail >= SLOTS (the record is lost and counted);
 *           idx = atomic add(head, 1); slot = slots[idx % SLOTS];
 *           slot.seq = 0, then fill slot.rec, then slot.seq = idx + 1 (x86
 *           keeps stores in order, a compiler barrier keeps clang's). Two
 *           writers on one CPU can both pass the check when the ring is
 *           one slot from full: the second then writes over an unread slot,
 *           which the reader sees (a seqlock).
 *   reader: from tail up to head, a slot is ready when seq == idx + 1 (less:
 *           its writer is still filling it; the reader stops there until the
 *           next drain); it copies the record, checks seq again (changed:
 *           overwritten meanwhile, counted lost), then advances tail.
 */
#ifndef WPCKPT_TRACKER_BPF_EVENT_RECORD_H
#define WPCKPT_TRACKER_BPF_EVENT_RECORD_H

#ifdef __bpf__
typedef __u64 wpckpt_u64;
typedef __u32 wpckpt_u32;
#else
#include <stdint.h>
typedef uint64_t wpckpt_u64;
typedef uint32_t wpckpt_u32;
#endif

enum wpckpt_event_kind {
  WPCKPT_EV_WRITE_FAULT = 1,  /* a write fault on a user page (user or kernel mode) */
  WPCKPT_EV_DISCARD = 2,      /* madvise that may empty pages: addr, len, detail = advice */
  WPCKPT_EV_REMAP = 3,        /* mremap: addr, len = old range; addr2, len2 = new range */
  WPCKPT_EV_MAP = 4,          /* mmap, munmap, mprotect, brk: addr, len; detail = syscall number */
  WPCKPT_EV_FORK = 5,         /* fork/clone of a new process (not a thread); detail = child pid */
  WPCKPT_EV_EXEC = 6,         /* the target replaced its address space */
  WPCKPT_EV_PINNING = 7,      /* direct I/O, io_uring, AIO, vmsplice: writes without faults may follow */
  WPCKPT_EV_FOREIGN = 8,      /* another process took the target's mmap lock (tid = its pid) */
};

#define WPCKPT_EV_KIND_MASK 0xfffull

/* Slots per CPU (a power of two): 8192 x 32 bytes = 256 KiB a CPU. The
 * reader drains every 5 ms: room for 1.6 million faults a second per CPU. */
#define WPCKPT_FAULT_RING_SLOTS 8192

struct wpckpt_fault_record {
  wpckpt_u64 addr_kind;  /* page address | WPCKPT_EV_WRITE_FAULT */
  wpckpt_u64 time_ns;    /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
  wpckpt_u32 tid;
  wpckpt_u32 error_code; /* x86: 1 present, 2 write, 4 user */
};

struct wpckpt_change_record {
  wpckpt_u64 addr_kind;
  wpckpt_u64 time_ns;
  wpckpt_u32 tid;
  wpckpt_u32 detail;
  wpckpt_u64 len;
  wpckpt_u64 addr2, len2;
};

struct wpckpt_fault_slot {
  wpckpt_u64 seq; /* idx + 1 once slot idx is filled */
  struct wpckpt_fault_record rec;
};

/* One CPU's ring: head (writers) and tail (the reader) on cache lines of
 * their own. */
struct wpckpt_fault_ring {
  wpckpt_u64 head;
  wpckpt_u64 pad_head[7];
  wpckpt_u64 tail;
  wpckpt_u64 pad_tail[7];
  struct wpckpt_fault_slot slots[WPCKPT_FAULT_RING_SLOTS];
};

/* Counters in the program's .bss, read by the reader through the mmaped map. */
struct wpckpt_event_counters {
  wpckpt_u64 lost;          /* records dropped because a ring was full */
  wpckpt_u64 changes;       /* address-space changes seen (recorded or lost) */
  wpckpt_u64 target_mm;     /* the target's mm, learned from its mmap lock; 0 until then */
};

#endif
