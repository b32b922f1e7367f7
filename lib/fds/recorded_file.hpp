// How restore opens the files an image names (descriptors, mapped files, the
// executable). An image is untrusted input: its paths and modes are whatever
// its author wrote. So every such open
//   - runs with the file-system credentials of the image's owner (the owner
//     of the newest image directory: its uid, its primary gid and the groups
//     getgrouplist gives), so the kernel refuses what that user could not
//     open (above all: for writing);
//   - never blocks (O_NONBLOCK, cleared afterwards when the process did not
//     have it): a file that became a FIFO cannot hang the restore;
//   - never follows a symbolic link in the last component (recorded paths
//     are the kernel's resolved ones);
//   - checks the opened file: its type must be the recorded one and its
//     identity (device and inode, or size and mtime) the dumped file's.
// All of it happens before the new process is created.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::fds {

struct ImageOwner {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary, from getgrouplist (empty when the uid has no passwd entry)
};

// The owner of `image_dir` and that user's groups.
Result<ImageOwner> image_owner(const std::filesystem::path& image_dir);

// Runs `work` in a short-lived thread whose file-system credentials (fsuid,
// fsgid, groups; per thread, by raw system calls) are the owner's. The
// process's own credentials never change.
Result<void> as_owner(const ImageOwner& owner, const std::function<Result<void>()>& work);

struct RecordedFile {
  const state::FileIdentity* identity = nullptr;  // required
  mode_t type = 0;        // S_IFREG, S_IFDIR, ...: the type the file must have (0: any)
  bool regular_or_block = false;  // "file" descriptors: S_IFREG or S_IFBLK
  std::string what;       // "fd 4", "mapped file", "executable": the start of every error
  bool content_matters = false;  // mapped: size and mtime must match (else dev and inode, or size and mtime)
  bool check_rdev = false;       // character devices: the device number instead of the inode
  dev_t rdev = 0;
};

// Opens `want.identity->path` with `flags` (O_ACCMODE and status flags) as
// described above; the result is close-on-exec.
Result<UniqueFd> open_recorded(const RecordedFile& want, int flags);

// `path` is a directory the calling thread may enter (search permission, as
// checked with its file-system ids): for the cwd and root of the process.
Result<void> check_directory_access(const std::string& path, const std::string& what);

// A file is the one recorded, for its bytes (mapped files, the executable):
// same size and mtime, or (no mtime recorded) same device and inode.
Result<void> check_file_identity(const state::FileIdentity& want, const struct stat& st, const std::string& what);

// A file behind a descriptor is the one recorded: same device and inode (it
// may have grown, as a log does), or else same size and mtime (a faithful copy).
Result<void> check_same_file(const state::FileIdentity& want, const struct stat& st, const std::string& what);

// "a regular file", "a FIFO", ...
std::string file_type_name(mode_t mode);

}  // namespace wpckpt::fds
