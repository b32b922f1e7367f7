// Rebuilds the recorded address space inside the seized new process, through
// syscalls injected into its main thread: every mapping of the child's own
// (a copy of wpckpt's) is unmapped except the injector's scratch area and the
// [vvar]/[vvar_vclock]/[vdso] group, which is moved as one block to its old
// address; then every recorded mapping is created at its address with its
// protection, flags and backing; madvise flags are re-applied; after the
// memory fill, guard regions are re-installed and the mm fields (brk, stack,
// args, env, auxv, exe) set with one PR_SET_MM_MAP.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

using Range = std::pair<uint64_t, uint64_t>;  // [start, end)

// A free area of `len` bytes that overlaps none of `busy`.
uint64_t pick_free_area(std::vector<Range> busy, uint64_t len);
// Where the injector's scratch area may live: outside the recorded layout and
// outside what the child has mapped now.
Result<uint64_t> pick_scratch_address(pid_t pid, const state::ProcessState& state);

// Descriptors (numbers in the child) of the files the mappings need.
struct MappingFiles {
  std::map<std::string, int> by_path;
  int exe_fd = -1;
  // Memfds the process also holds open, by (device, inode): their shared
  // mappings map that descriptor, so the mapping and the descriptor stay one
  // object (a write through one is seen through the other).
  std::map<std::pair<uint64_t, uint64_t>, int> memfd_by_inode;
};

// Unmaps the child's own memory, moves the vdso group, maps every recorded mapping.
Result<void> build_mappings(ptrace::Injector& inj, const state::ProcessState& state, const MappingFiles& files);
// After the fill: guard regions, PR_SET_MM_MAP (with exe), signal handlers.
Result<void> finish_mm(ptrace::Injector& inj, const state::ProcessState& state, const MappingFiles& files);

// The recorded mappings that build_mappings creates (all but the special ones).
std::vector<state::Mapping> regular_mappings(const state::ProcessState& state);
// Address of a `syscall` instruction in the recorded (now moved) [vdso].
Result<uint64_t> vdso_syscall_site(const state::ProcessState& state);

}  // namespace wpckpt::restore
