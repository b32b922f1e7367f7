// eventfd: the counter and the semaphore mode, from fdinfo.
#include <fcntl.h>
#include <sys/eventfd.h>

#include "lib/fds/fd_handler.hpp"

namespace wpckpt::fds {
namespace {

class EventfdHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar&) const override {
    WPCKPT_TRY_ASSIGN(f.details["count"], src.info->number<uint64_t>("eventfd-count", 16));
    f.details["semaphore"] = src.info->get("eventfd-semaphore") == "1";
    return ok();
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader&, FdObject& o) const override {
    bool semaphore = false;
    WPCKPT_TRY(detail(f, "count", o.count));
    WPCKPT_TRY(detail(f, "semaphore", semaphore));
    // eventfd(2) takes an unsigned int: the count is written afterwards.
    o.flags = (f.flags & O_NONBLOCK) | (semaphore ? EFD_SEMAPHORE : 0);
    if (o.count == UINT64_MAX) return state::field_error("fd " + std::to_string(f.fd) + " details.count", "is 2^64-1, above an eventfd's maximum");
    return ok();
  }

  int32_t create(FdObject& o) const override {
    o.tmp[0] = eventfd(0, o.flags | EFD_NONBLOCK);
    if (o.tmp[0] < 0) return kStepEventfd;
    if (o.count != 0 && ::write(o.tmp[0], &o.count, sizeof o.count) != sizeof o.count) return kStepEventfd;
    if (o.flags & EFD_NONBLOCK) return 0;
    int fl = fcntl(o.tmp[0], F_GETFL);
    if (fl < 0 || fcntl(o.tmp[0], F_SETFL, fl & ~O_NONBLOCK) != 0) return kStepEventfd;
    return 0;
  }
};

constinit const EventfdHandler kEventfd;

}  // namespace

const FdHandler& eventfd_handler() { return kEventfd; }

}  // namespace wpckpt::fds
