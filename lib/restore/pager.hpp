// The pager of a lazy restore: serves the userfaultfd MISSING faults of the
// restored process from a LazyPageSource and copies everything else in behind
// them, then unregisters and returns. One thread does all of it, so that the
// picture of the address space (lazy_regions.hpp) and the copies never race:
//  - urgent first: before every background chunk (16 pages) the pager reads
//    every pending message and serves every fault; a fault waits at most one
//    chunk of background work;
//  - a fault copies the whole 16-page block around the page (the frame's run)
//    in one UFFDIO_COPY; zero pages get UFFDIO_ZEROPAGE;
//  - many threads faulting on one page: the first copy wakes them all; a
//    message for a page already in gets EEXIST and a wake;
//  - events (docs/KERNEL.md §9): REMOVE makes pages read zero, UNMAP forgets
//    them, REMAP moves them, FORK adds the child as a second target served
//    the same way. While an event is unread every copy fails with EAGAIN:
//    the pager reads it and retries. A fork child's uffd is also sent to
//    the supervisor (fork_sink), so that it outlives the pager as the
//    parent's does (the child holds no copy of its own).
// At the end the pager unregisters every range and reads on until no event
// is under way (settle in pager.cpp): a fork, munmap, mremap or madvise that
// saw a range still registered waits in the kernel for its message to be
// read, and may have started just before the unregister.
// Any error (unreadable image, an unexpected ioctl failure) ends the pager
// with that error: the supervisor then kills the process (lazy_restore.hpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/restore/lazy_page_source.hpp"
#include "lib/restore/lazy_regions.hpp"

namespace wpckpt::restore {

struct PagerStats {
  uint64_t faults = 0;            // fault messages served
  uint64_t pages_faulted = 0;     // pages copied to serve faults
  uint64_t pages_zero = 0;        // pages served by UFFDIO_ZEROPAGE
  uint64_t pages_prefetched = 0;  // pages copied by the background pass
  uint64_t events = 0;            // REMOVE/UNMAP/REMAP/FORK messages
  uint64_t forks = 0;
  double p50_us = 0, p99_us = 0, max_us = 0;  // fault service: message read -> page in and woken
  double seconds = 0;             // pager start -> all in
  bool process_gone = false;      // the restored process exited (or exec'd) before all was in
};

struct PagerOptions {
  int uffd = -1;                     // the pager's copy of the restored process's uffd (not owned)
  std::vector<LazyRegion> regions;   // what was registered, every page Pending
  int start_fd = -1;                 // readable once the background pass may start (not owned)
  int fork_sink = -1;                // unix socket: each fork child's uffd is sent there (SCM_RIGHTS)
  std::vector<uint64_t> hot;         // pages copied first, before any fault (stacks, TLS of the threads)
};

Result<PagerStats> run_pager(LazyPageSource& source, PagerOptions options);

}  // namespace wpckpt::restore
