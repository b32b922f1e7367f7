// Everything the new process does for itself before it stops for the
// address-space rebuild: file descriptors at their numbers, cwd, root, umask,
// rlimits, personality. Computed by wpckpt beforehand, because the child,
// made by a raw clone3 of a possibly multi-threaded wpckpt, may only make
// system calls (no allocation, no locks).
#pragma once

#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

// One file description (or one pipe) to create in the child.
struct FdObject {
  // Open: a file opened by wpckpt before the child exists (open_fd_files),
  // which makes it an Inherit of that descriptor; the child never opens a path.
  enum class How { Open, Pipe, Eventfd, Memfd, Signalfd, Timerfd, Epoll, Inherit } how = How::Open;
  std::string path;      // the name for Memfd
  // Open: the recorded file, the fd it is for (messages), its expected type
  // (S_IF*; "file" descriptors are S_IFREG or S_IFBLK) and, for character
  // devices, the recorded device number (checked instead of the inode).
  state::FileIdentity file;
  int first_fd = -1;
  mode_t file_type = 0;
  bool regular_or_block = false;
  bool check_rdev = false;
  uint32_t rdev_major = 0, rdev_minor = 0;
  int flags = 0;         // open(2) flags without O_CREAT/O_TRUNC/O_EXCL/O_CLOEXEC; eventfd/signalfd/... flags
  uint64_t pos = 0;      // lseek after open
  bool seek = false;
  std::vector<uint8_t> data;  // Pipe: unread bytes, written back; Memfd: contents
  uint64_t count = 0;         // Eventfd: counter; Signalfd: mask
  int clockid = 0;            // Timerfd
  uint64_t timer[4] = {};     // Timerfd: interval sec/nsec, value sec/nsec (relative)
  int inherit_fd = -1;        // Inherit: wpckpt's own descriptor of that number
  int seals = 0;              // Memfd: F_ADD_SEALS once the contents are written
  // Filled in the child: where the created object sits (Pipe: [0] read, [1] write).
  int tmp[2] = {-1, -1};
};

struct FdTarget {
  int fd = 0;
  size_t object = 0;
  int end = 0;  // Pipe: 0 read end, 1 write end
  bool cloexec = false;
};

struct EpollTarget {  // epoll_ctl(ADD) once every descriptor has its number
  int epfd = 0, fd = 0;
  uint32_t events = 0;
  uint64_t data = 0;
};

struct ChildPlan {
  int pid = 0;
  std::vector<FdObject> objects;
  std::vector<FdTarget> targets;
  std::vector<EpollTarget> epoll_targets;
  std::vector<int> keep_fds;  // inherited from wpckpt and still needed (mapping files, exe, sync pipes)
  std::string root, cwd;
  uint32_t umask = 022;
  struct Limit {
    int resource;
    rlimit value;
  };
  std::vector<Limit> limits;
  bool set_personality = false;
  unsigned long personality = 0;
};

// Builds the descriptor part of the plan from the recorded descriptors.
// Fails for a kind that cannot be rebuilt, naming the descriptor.
using ImageFileReader = std::function<Result<std::vector<std::byte>>(const std::string& name)>;
Result<void> plan_fds(const state::ProcessState& state, ChildPlan& plan, const ImageFileReader& read_image_file);
// Opens every How::Open object as open_recorded() does (type and identity
// checked, never blocking), seeks it to its offset and turns it into an
// Inherit of a descriptor placed above every number the plan uses; `held`
// keeps them open until the child has its copies. Call it inside as_owner().
Result<void> open_fd_files(ChildPlan& plan, std::vector<UniqueFd>& held);

// Rlimits as the image has them, with hard limits that cannot be raised here
// (no CAP_SYS_RESOURCE) kept at their current value; each such case adds a warning.
void plan_limits(const state::ProcessState& state, ChildPlan& plan, std::vector<std::string>& warnings);

// Lowest descriptor number the plan leaves free (above every target and kept one).
int plan_fd_floor(const ChildPlan& plan);

// A child's failure report: which step, which errno, which descriptor.
struct ChildReport {
  int32_t step = 0;  // 0 = ready
  int32_t err = 0;
  int32_t fd = -1;
};
std::string describe_child_step(int32_t step);

// Runs in the child (after clone3): performs the plan, writes a ChildReport to
// `report_fd`, then blocks reading `hold_fd` until it is ptrace-stopped and
// rebuilt; EOF there (wpckpt gone) makes it exit. `parent` > 0: the child
// also dies with that parent (PR_SET_PDEATHSIG, SIGKILL; restore clears it
// once it has seized the child, whose own death is then PTRACE_O_EXITKILL's).
// No step blocks (files are opened by wpckpt beforehand). Never returns.
[[noreturn]] void run_child_plan(ChildPlan& plan, int report_fd, int hold_fd, pid_t parent);

}  // namespace wpckpt::restore
