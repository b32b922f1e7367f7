/* The records the BPF programs (events.bpf.c) put into the ring buffer and
 * the counters they keep; shared by the BPF side (C, clang -target bpf) and
 * the reader (tracker/events/). Little-endian, this machine's layout.
 *
 * Every record starts with `addr_kind`: a page-aligned address with the
 * record kind in its low 12 bits. A write fault is 24 bytes; an
 * address-space change 48.
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

/* Counters in the program's .bss, read by the reader through the mmaped map. */
struct wpckpt_event_counters {
  wpckpt_u64 lost;          /* records dropped because the ring buffer was full */
  wpckpt_u64 faults;        /* write faults seen (recorded or lost) */
  wpckpt_u64 changes;       /* address-space changes seen (recorded or lost) */
  wpckpt_u64 target_mm;     /* the target's mm, learned from its mmap lock; 0 until then */
};

#endif
