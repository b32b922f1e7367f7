// Anonymous pipes: both ends are one object (keyed by the pipe's inode); the
// unread bytes are read at dump without consuming them and written back
// into the new pipe. FIFOs share the capture (path_fds.cpp reopens them).
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "lib/fds/fd_handler.hpp"

namespace wpckpt::fds {
namespace {

// Where /proc refuses a new read end (a pipe another user created: its inode
// is that user's, mode 0600), the process's own read end of the pipe, copied
// with pidfd_getfd (docs/KERNEL.md §13): `src` itself, or, for a write end, another descriptor of
// the process on the same pipe. Invalid when the process holds no read end:
// the unread bytes then wait for a reader outside the process, which a
// restore does not reconnect (the restored process cannot read them either).
Result<UniqueFd> own_read_end(const FdSource& src, const Error& refused) {
  auto readable = [](const UniqueFd& fd) { return (::fcntl(fd.get(), F_GETFL) & O_ACCMODE) != O_WRONLY; };
  auto mine = src.target->copy(src.fd);
  if (!mine) {
    Error e = refused;
    e.hint = "the pipe belongs to another user and pidfd_getfd failed too (" + std::string(strerror(mine.error().err)) +
             "); dump as that user or as root";
    return e;
  }
  if (readable(*mine)) return std::move(*mine);
  const std::string dir = fmt::format("/proc/{}/fd", src.pid);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(entry.path(), link_ec).string() != src.link) continue;
    auto other = src.target->copy(std::atoi(entry.path().filename().c_str()));
    if (other && readable(*other)) return std::move(*other);
  }
  return UniqueFd();
}

// Unread bytes of a pipe or FIFO, without consuming them: a new read end
// opened through /proc (or the process's own, own_read_end), tee(2) into a
// pipe of our own, read from that.
Result<std::vector<uint8_t>> peek_pipe(const FdSource& src) {
  const std::string& path = src.proc_path;
  UniqueFd rd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!rd) {
    Error refused = errno_error("open", path);
    if (refused.err != EACCES && refused.err != EPERM) return refused;
    WPCKPT_TRY_ASSIGN(rd, own_read_end(src, refused));
    if (!rd) return std::vector<uint8_t>{};
  }
  int size = ::fcntl(rd.get(), F_GETPIPE_SZ);
  if (size < 0) return errno_error("fcntl(F_GETPIPE_SZ)", path);
  int ours[2];
  if (::pipe2(ours, O_CLOEXEC | O_NONBLOCK) != 0) return errno_error("pipe2");
  UniqueFd our_rd(ours[0]), our_wr(ours[1]);
  // A smaller copy would hold fewer bytes than the pipe: tee would miss the rest.
  if (::fcntl(our_wr.get(), F_SETPIPE_SZ, size) < 0) return errno_error("fcntl(F_SETPIPE_SZ)", "copy of " + path);
  std::vector<uint8_t> data;
  ssize_t n = ::tee(rd.get(), our_wr.get(), static_cast<size_t>(size), SPLICE_F_NONBLOCK);
  if (n < 0 && errno != EAGAIN) return errno_error("tee", path);
  if (n > 0) {
    data.resize(static_cast<size_t>(n));
    size_t got = 0;
    while (got < data.size()) {
      ssize_t r = ::read(our_rd.get(), data.data() + got, data.size() - got);
      if (r <= 0) return errno_error("read", "copy of " + path);
      got += static_cast<size_t>(r);
    }
  }
  return data;
}

int end_of(const state::FdState& f) { return (f.flags & O_ACCMODE) == O_WRONLY ? 1 : 0; }

class PipeHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar& so_far) const override {
    return capture_pipe_contents(src, f, so_far);
  }

  Result<uint64_t> object_key(const state::FdState& f) const override {
    uint64_t ino = f.object_id;
    WPCKPT_TRY(detail(f, "pipe_ino", ino));
    return ino;
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader&, FdObject& o) const override {
    o.flags = f.flags & O_NONBLOCK;
    return ok();
  }

  // Every end: its side, and the unread bytes (recorded on one end only).
  Result<void> add(const state::FdState& f, FdObject& o, FdTarget& t) const override {
    t.end = end_of(f);
    std::vector<uint8_t> data;
    WPCKPT_TRY(detail(f, "data", data));
    if (!data.empty()) o.data = std::move(data);
    return ok();
  }

  int32_t create(FdObject& o) const override {
    int p[2];
    if (pipe2(p, o.flags) != 0) return kStepPipe;
    o.tmp[0] = p[0];
    o.tmp[1] = p[1];
    if (o.data.empty()) return 0;
    if (o.data.size() > 65536 && fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(o.data.size())) < 0) return kStepPipeData;
    int fl = fcntl(p[1], F_GETFL);
    if (fl < 0 || fcntl(p[1], F_SETFL, fl | O_NONBLOCK) != 0) return kStepPipeData;
    size_t done = 0;
    while (done < o.data.size()) {
      ssize_t n = ::write(p[1], o.data.data() + done, o.data.size() - done);
      if (n <= 0) return kStepPipeData;
      done += static_cast<size_t>(n);
    }
    if (fcntl(p[1], F_SETFL, fl) != 0) return kStepPipeData;
    return 0;
  }
};

constinit const PipeHandler kPipe;

}  // namespace

Result<void> capture_pipe_contents(const FdSource& src, state::FdState& f, const CaptureSoFar& so_far) {
  const auto ino = static_cast<uint64_t>(src.st.st_ino);
  f.details["pipe_ino"] = ino;
  bool first_of_pipe = std::none_of(so_far.fds.begin(), so_far.fds.end(), [&](const state::FdState& o) {
    auto it = o.details.find("pipe_ino");
    return it != o.details.end() && *it == ino && o.details.contains("data");
  });
  if (first_of_pipe) {
    WPCKPT_TRY_ASSIGN(auto data, peek_pipe(src));
    f.details["data"] = state::to_hex(data);
  }
  return ok();
}

const FdHandler& pipe_handler() { return kPipe; }

}  // namespace wpckpt::fds
