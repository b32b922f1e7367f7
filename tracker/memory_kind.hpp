// What memory an area is: the one classification of /proc/PID/maps entries
// that tracking, the image, the dump's process state and restore share.
//
// The kind answers one question: where do the area's contents come from
// when the process is rebuilt?
//
//   anon    private memory with no file (MAP_PRIVATE|MAP_ANONYMOUS, named
//           "[anon:...]" areas, a private mapping of /dev/zero). Starts
//           zeroed; the image holds every page that is not zero.
//   heap    the brk area "[heap]": anonymous, recorded apart for PR_SET_MM.
//   stack   the main thread's "[stack]": anonymous, grows down.
//   file    a mapping of a file that can be opened again by its path (not
//           deleted). Private: restore maps the file again and lays the
//           pages the image holds (those written, copy-on-write) over it;
//           an untouched page is file data, not zero. Shared: the contents
//           live in the file itself and the image holds none.
//   shmem   memory whose backing object cannot be opened again by a path:
//           shared anonymous memory ("/dev/zero (deleted)", "[anon_shmem:]"),
//           memfds ("/memfd:NAME (deleted)"), SysV segments ("/SYSV..."),
//           deleted files ("... (deleted)"), shared or private. The image
//           holds all of it and restore creates fresh anonymous memory
//           (shared if the mapping was) to hold it. Shared ones are copied
//           whole at every iteration (writes through other mappings are
//           invisible to write-protect); private ones are tracked like
//           anonymous memory, except that an untouched page is file data.
//   vdso, vvar, vvar_vclock, vsyscall
//           provided by the kernel: no contents in the image; restore keeps
//           the new kernel's, moved to the recorded addresses.
//
// Guard regions (MADV_GUARD_INSTALL) are not areas: they are markers inside
// one and keep the area's kind. An inaccessible (PROT_NONE) area keeps its
// kind too; how it is tracked is the tracker's business (iteration_scan.hpp).
//
// The names are part of the image format (manifest `areas[].backing`,
// process.json `mappings[].kind`, dump-format/FORMAT.md): never renamed.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "tracker/proc_maps.hpp"

namespace wpckpt::tracker {

enum class MemoryKind : uint8_t { Anon, Heap, Stack, File, Shmem, Vdso, Vvar, VvarVclock, Vsyscall };

MemoryKind classify_memory(const Vma& vma);

// "anon", "file", ... and back (nullopt for a name no wpckpt wrote).
const char* memory_kind_name(MemoryKind kind);
std::optional<MemoryKind> parse_memory_kind(std::string_view name);

// What the kind implies (with the mapping's MAP_SHARED flag).
// [vdso], [vvar], [vvar_vclock], [vsyscall]: no contents, not re-created.
constexpr bool is_kernel_provided(MemoryKind k) {
  return k == MemoryKind::Vdso || k == MemoryKind::Vvar || k == MemoryKind::VvarVclock || k == MemoryKind::Vsyscall;
}
// [vdso] and the vvar pages it reads at fixed offsets: moved as one block.
constexpr bool is_vdso_group(MemoryKind k) {
  return k == MemoryKind::Vdso || k == MemoryKind::Vvar || k == MemoryKind::VvarVclock;
}
// Restore maps the recorded file again (by path, identity checked).
constexpr bool maps_file_again(MemoryKind k) { return k == MemoryKind::File; }
// The contents are the file's; the image holds none.
constexpr bool contents_in_file(MemoryKind k, bool shared) { return k == MemoryKind::File && shared; }
// Shared memory without a file: other mappings may write it unseen, so it is copied whole every time.
constexpr bool copied_whole(MemoryKind k, bool shared) { return k == MemoryKind::Shmem && shared; }
// A page never written in this mapping holds file data, not zeros.
constexpr bool untouched_page_is_file_data(MemoryKind k, bool shared) {
  return !shared && (k == MemoryKind::File || k == MemoryKind::Shmem);
}
// Restore creates it as fresh (zero) anonymous memory: zero pages need no write.
constexpr bool restored_zeroed(MemoryKind k) {
  return k == MemoryKind::Anon || k == MemoryKind::Heap || k == MemoryKind::Stack || k == MemoryKind::Shmem;
}

}  // namespace wpckpt::tracker
