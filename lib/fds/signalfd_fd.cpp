// signalfd: the mask of signals it reads, from fdinfo.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/fds/fd_handler.hpp"

namespace wpckpt::fds {
namespace {

class SignalfdHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar&) const override {
    WPCKPT_TRY_ASSIGN(f.details["sigmask"], src.info->number<uint64_t>("sigmask", 16));
    return ok();
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader&, FdObject& o) const override {
    WPCKPT_TRY(detail(f, "sigmask", o.count));
    o.flags = f.flags & O_NONBLOCK;
    return ok();
  }

  int32_t create(FdObject& o) const override {
    uint64_t mask = o.count;
    o.tmp[0] = static_cast<int>(syscall(SYS_signalfd4, -1, &mask, 8, o.flags));
    return o.tmp[0] < 0 ? kStepSignalfd : 0;
  }
};

constinit const SignalfdHandler kSignalfd;

}  // namespace

const FdHandler& signalfd_handler() { return kSignalfd; }

}  // namespace wpckpt::fds
