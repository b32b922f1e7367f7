// Deleted, open regular files ("ghost files", CRIU's name): the dump saves
// their contents (up to --ghost-limit) as an image file; restore re-creates
// an unnamed file with those contents in the directory the file was in
// (O_TMPFILE, as the image's owner, with the recorded mode) and opens it
// with the process's flags at its offset. The process sees the same bytes
// and, as before, a file without a name.
//
// Refused at dump: one deleted file open through two open file descriptions
// (they would become two files), and one that is also mapped shared (the
// mapping comes back as anonymous shared memory, apart from the file).
#pragma once

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/fds/fd_handler.hpp"

namespace wpckpt::fds {

Result<void> capture_ghost(const FdSource& src, state::FdState& f, CaptureSoFar& so_far);
Result<void> plan_ghost(const state::FdState& f, const ImageFileReader& files, FdObject& o);
// In prepare(), as the image's owner: the new unnamed file, opened with o.flags.
Result<UniqueFd> create_ghost(const FdObject& o);

}  // namespace wpckpt::fds
