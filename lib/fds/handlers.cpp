// Which handler a kind has, and which kind a live descriptor is.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "lib/fds/fd_handler.hpp"
#include "lib/fds/socket_common.hpp"

namespace wpckpt::fds {
namespace {

using state::FdKind;

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

bool is_tty(dev_t rdev) {
  unsigned maj = major(rdev);
  return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143);
}

Error unsupported(const FdSource& src, const std::string& kind) {
  return make_error(EOPNOTSUPP, "dump", fmt::format("fd {} of process {} is a {} ({})", src.fd, src.pid, kind, src.link))
      .with_hint(fmt::format("{}s are not supported yet: close fd {} in the process before dumping it", kind, src.fd));
}

Result<FdKind> classify_socket(FdSource& src) {
  WPCKPT_TRY_ASSIGN(src.copy, src.target->copy(src.fd));
  WPCKPT_TRY_ASSIGN(int family, socket_int_option(src.copy.get(), SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN"));
  if (family == AF_INET || family == AF_INET6) return FdKind::InetSocket;
  if (family == AF_UNIX) return FdKind::UnixSocket;
  return unsupported(src, family == AF_NETLINK ? "netlink socket" : fmt::format("socket of family {}", family));
}

}  // namespace

const FdHandler& handler_for(FdKind kind) {
  switch (kind) {
    case FdKind::Pipe: return pipe_handler();
    case FdKind::Eventfd: return eventfd_handler();
    case FdKind::Epoll: return epoll_handler();
    case FdKind::Signalfd: return signalfd_handler();
    case FdKind::Timerfd: return timerfd_handler();
    case FdKind::Memfd: return memfd_handler();
    case FdKind::InetSocket: return inet_socket_handler();
    case FdKind::UnixSocket: return unix_socket_handler();
    case FdKind::Inotify: return inotify_handler();
    case FdKind::File:
    case FdKind::Dir:
    case FdKind::DevNull:
    case FdKind::Tty:
    case FdKind::CharDev:
    case FdKind::Fifo: break;
  }
  return path_handler(kind);
}

Result<void> set_nonblock_as_dumped(int fd, int flags, const std::string& what) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return errno_error("fcntl(F_GETFL)", what);
  int want = (flags & O_NONBLOCK) ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (want != fl && ::fcntl(fd, F_SETFL, want) != 0) return errno_error("fcntl(O_NONBLOCK)", what);
  return ok();
}

Result<FdKind> classify(FdSource& src) {
  const std::string& link = src.link;
  const mode_t mode = src.st.st_mode;
  if (starts_with(link, "socket:")) return classify_socket(src);
  if (starts_with(link, "anon_inode:")) {
    std::string name = link.substr(11);
    if (!name.empty() && name.front() == '[') name = name.substr(1, name.size() - 2);
    if (name == "eventfd") return FdKind::Eventfd;
    if (name == "eventpoll") return FdKind::Epoll;
    if (name == "signalfd") return FdKind::Signalfd;
    if (name == "timerfd") return FdKind::Timerfd;
    if (name == "inotify") return FdKind::Inotify;
    return unsupported(src, name);
  }
  if (starts_with(link, "pipe:")) return FdKind::Pipe;
  if (S_ISFIFO(mode)) return FdKind::Fifo;
  if (starts_with(link, "/memfd:")) return FdKind::Memfd;
  if (link.empty() || link[0] != '/') return unsupported(src, link.substr(0, link.find(':')));
  if (S_ISDIR(mode)) return FdKind::Dir;
  if (S_ISCHR(mode) && src.st.st_rdev == makedev(1, 3)) return FdKind::DevNull;
  if (S_ISCHR(mode) && is_tty(src.st.st_rdev)) return FdKind::Tty;
  if (S_ISCHR(mode)) return FdKind::CharDev;
  if (S_ISREG(mode) || S_ISBLK(mode)) return FdKind::File;
  return unsupported(src, "special file");
}

std::string describe_child_step(int32_t step) {
  switch (step) {
    case kReady: return "ready";
    case kStepSignals: return "reset signal handlers";
    case kStepSaveInherited: return "keep an inherited descriptor";
    case kStepOpen: return "reopen descriptor";
    case kStepSeek: return "seek descriptor to its offset";
    case kStepPipe: return "re-create pipe";
    case kStepPipeData: return "write unread data back into pipe";
    case kStepEventfd: return "re-create eventfd";
    case kStepMemfd: return "re-create memfd";
    case kStepSignalfd: return "re-create signalfd";
    case kStepTimerfd: return "re-create timerfd";
    case kStepEpoll: return "re-create epoll";
    case kStepMoveHigh: return "move descriptor out of the way";
    case kStepDup: return "place descriptor at its number";
    case kStepEpollCtl: return "re-add descriptor to epoll";
    case kStepCloseRest: return "close other descriptors";
    case kStepRoot: return "chroot";
    case kStepCwd: return "chdir";
    case kStepRlimit: return "setrlimit";
    case kStepPersonality: return "personality";
    case kStepSeals: return "re-apply memfd seals";
    case kStepDeathSignal: return "set the parent-death signal";
    case kStepSocket: return "take over a socket";
    case kStepSession: return "set the session or process group";
    case kStepFork: return "create a child process with its pid (clone3)";
    case kStepTreeObject: return "make an object the processes of the tree share";
    default: return "step " + std::to_string(step);
  }
}

}  // namespace wpckpt::fds
