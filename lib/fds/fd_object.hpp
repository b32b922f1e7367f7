// What a restore creates for one open file description (or one pipe) and
// at which numbers it puts it: the plan a kind's handler fills in wpckpt and
// the restore child carries out with system calls alone.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/state/process_state.hpp"

namespace wpckpt::fds {

struct EpollTarget {  // epoll_ctl(ADD) once every descriptor has its number
  int epfd = 0, fd = 0;
  uint32_t events = 0;
  uint64_t data = 0;
};

struct FdObject {
  state::FdKind kind = state::FdKind::File;
  int first_fd = -1;          // the first descriptor number it is for (messages, child reports)
  // Set when wpckpt already holds the object (a file it opened, or its own
  // 0-2): the child only duplicates this descriptor of wpckpt's.
  int inherit_fd = -1;
  int flags = 0;              // open(2)/eventfd/signalfd/timerfd/pipe2 flags, as each kind needs
  uint64_t pos = 0;           // files and memfds: the offset
  bool seek = false;
  // Opened by path (file-like kinds): the recorded file and what it must be.
  state::FileIdentity file;
  mode_t file_type = 0;       // S_IF*; 0 with regular_or_block for "file"
  bool regular_or_block = false;
  bool check_rdev = false;    // character devices: the device number instead of the inode
  uint32_t rdev_major = 0, rdev_minor = 0;
  bool replaced_at_dump = false;  // the path named another file already then: said when it fails
  // Created in the child.
  std::string name;           // memfd name
  std::vector<uint8_t> data;  // pipe: unread bytes; memfd: contents
  uint64_t count = 0;         // eventfd counter; signalfd mask
  int seals = 0;              // memfd: F_ADD_SEALS once the contents are written
  int clockid = 0;            // timerfd
  uint64_t timer[4] = {};     // timerfd: interval sec/nsec, value sec/nsec (relative)
  std::vector<EpollTarget> epoll_targets;
  // Filled in the child: where the created object sits (pipe: [0] read, [1] write).
  int tmp[2] = {-1, -1};
};

struct FdTarget {
  int fd = 0;
  size_t object = 0;
  int end = 0;  // pipe: 0 read end, 1 write end
  bool cloexec = false;
};

// The steps of the restore child; a failure report names one (with errno and
// the descriptor). Values only travel between wpckpt and its own child.
enum ChildStep : int32_t {
  kReady = 0,
  kStepSignals,
  kStepSaveInherited,
  kStepOpen,
  kStepSeek,
  kStepPipe,
  kStepPipeData,
  kStepEventfd,
  kStepMemfd,
  kStepSignalfd,
  kStepTimerfd,
  kStepEpoll,
  kStepMoveHigh,
  kStepDup,
  kStepEpollCtl,
  kStepCloseRest,
  kStepRoot,
  kStepCwd,
  kStepRlimit,
  kStepPersonality,
  kStepSeals,
  kStepDeathSignal,
};
std::string describe_child_step(int32_t step);

}  // namespace wpckpt::fds
