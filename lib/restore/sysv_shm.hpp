// SysV shared memory segments of an image (lib/state/process_state.hpp
// SysvShm), made again by wpckpt in its IPC namespace (the one restored
// processes are created in) before the processes attach them.
//
// A segment with the recorded id that is still there (a restore on the host
// of the dump: segments outlive their processes unless removed) is used
// when its key and size match, and refused (EEXIST) otherwise. A missing
// one is created with that id (kernel.shm_next_id, then shmget; the id is
// checked), the recorded key, size, mode and owner. Segments recorded as
// removed (IPC_RMID) are removed again once every process has attached
// them (finish()); if the restore fails, the segments made here are removed.
#pragma once

#include <sys/types.h>

#include <vector>

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

// A mapping that is an attachment of a SysV segment (its id: m.file->inode).
bool is_sysv_mapping(const state::Mapping& m);

class SysvSegments {
 public:
  // The image is untrusted: unless its owner is root, a segment must be
  // owned by the image's owner and one of the gids of a process that has it
  // attached (EPERM otherwise), as the owner could have made it.
  static Result<SysvSegments> make(const std::vector<const state::ProcessState*>& processes, uid_t image_owner);
  SysvSegments() = default;
  SysvSegments(SysvSegments&& other) noexcept { *this = std::move(other); }
  SysvSegments& operator=(SysvSegments&& other) noexcept;
  ~SysvSegments();

  // Every process is attached: removes those recorded as removed, keeps the rest.
  Result<void> finish();

 private:
  std::vector<int> created_;
  std::vector<int> to_remove_;
};

}  // namespace wpckpt::restore
