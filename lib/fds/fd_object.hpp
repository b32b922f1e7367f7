// What a restore creates for one open file description (or one pipe) and
// at which numbers it puts it: the plan a kind's handler fills in wpckpt and
// the restore child carries out with system calls alone.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/fds/file_locks.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::fds {

struct EpollTarget {  // epoll_ctl(ADD) once every descriptor has its number
  int epfd = 0, fd = 0;
  uint32_t events = 0;
  uint64_t data = 0;
};

struct InotifyWatch {  // added again by prepare() (inotify_fd.cpp)
  int wd = 0;
  std::string path;
  uint32_t mask = 0;
  uint64_t ino = 0;
};

struct SocketAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;  // 0: none (unbound, unconnected)
};

struct SocketOption {
  int level = 0, name = 0, value = 0;
};

// Sockets: created by prepare() in wpckpt (socket_common.hpp says why).
struct SocketPlan {
  int family = 0, type = 0, protocol = 0;
  SocketAddress local, peer;
  bool listen = false;
  int backlog = 0;
  bool connect = false;               // connect to `peer` (UDP, unix datagram)
  std::vector<SocketOption> options;  // set before bind
  std::string device;                 // inet: SO_BINDTODEVICE, set right after socket()
  // unix: a socketpair (both ends in the process), the bytes queued at each
  // end, per message for datagram and seqpacket pairs, and whether the
  // second end was already closed (the first reads its data, then EOF).
  bool pair = false, peer_closed = false;
  std::vector<uint8_t> queued[2];
  std::vector<uint32_t> message_sizes[2];
  std::vector<SocketOption> end_options[2];  // a pair's ends, each its own
  bool end_nonblock[2] = {false, false};
  dev_t name_dev = 0;  // unix: the socket file a bound path had (a stale one is replaced)
  ino_t name_ino = 0;
};

// An established TCP connection, restored with TCP repair (tcp_repair.hpp).
struct TcpRepairPlan {
  bool wanted = false;
  uint32_t send_seq = 0, recv_seq = 0;  // of the first byte of each queue
  std::vector<uint8_t> send_queue;      // not yet acknowledged; its last `unsent` bytes never left
  uint32_t unsent = 0;
  std::vector<uint8_t> recv_queue;      // received, not yet read by the program
  uint32_t mss = 0, snd_wscale = 0, rcv_wscale = 0, timestamp = 0;
  bool sack = false, timestamps = false, wscale = false;
  uint32_t window[5] = {};  // tcp_repair_window: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup
};

struct FdObject {
  state::FdKind kind = state::FdKind::File;
  int first_fd = -1;          // the first descriptor number it is for (messages, child reports)
  // Set when wpckpt already holds the object (a file it opened, or its own
  // 0-2): the child only duplicates this descriptor of wpckpt's.
  int inherit_fd = -1;
  int inherit_fd_end1 = -1;   // a socketpair's second end, also held by wpckpt
  int flags = 0;              // open(2)/eventfd/signalfd/timerfd/pipe2 flags, as each kind needs
  uint64_t pos = 0;           // files and memfds: the offset
  bool seek = false;
  std::vector<FileLock> locks;  // path kinds: flock/OFD ones taken by prepare() (file_locks.hpp)
  // Opened by path (file-like kinds): the recorded file and what it must be.
  state::FileIdentity file;
  mode_t file_type = 0;       // S_IF*; 0 with regular_or_block for "file"
  bool regular_or_block = false;
  bool check_rdev = false;    // character devices: the device number instead of the inode
  uint32_t rdev_major = 0, rdev_minor = 0;
  bool replaced_at_dump = false;  // the path named another file already then: said when it fails
  bool ghost = false;             // a deleted file: re-created from `data` (ghost_file.hpp)
  mode_t ghost_mode = 0600;
  // Created in the child.
  std::string name;           // memfd name
  std::vector<uint8_t> data;  // pipe: unread bytes; memfd: contents
  uint64_t count = 0;         // eventfd counter; signalfd mask
  int seals = 0;              // memfd: F_ADD_SEALS once the contents are written
  int clockid = 0;            // timerfd
  uint64_t timer[4] = {};     // timerfd: interval sec/nsec, value sec/nsec (relative)
  std::vector<EpollTarget> epoll_targets;
  std::vector<InotifyWatch> watches;
  SocketPlan socket;
  TcpRepairPlan tcp;
  // Filled in the child: where the created object sits (pipe: [0] read, [1] write).
  int tmp[2] = {-1, -1};
  // A process tree's object shared with other processes, made once for all
  // (lib/restore/tree_restore.hpp): its index there; inherit_fd and
  // inherit_fd_end1 are filled in once its numbers are known.
  int tree_object = -1;
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
  kStepSocket,
  kStepSession,
  kStepFork,
  kStepTreeObject,
};
std::string describe_child_step(int32_t step);

}  // namespace wpckpt::fds
