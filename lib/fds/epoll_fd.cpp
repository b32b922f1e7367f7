// epoll: its targets (descriptor, events, data) from fdinfo; restore adds
// them back once every descriptor has its number.
#include <sys/epoll.h>

#include <cstdio>

#include "lib/fds/fd_handler.hpp"

namespace wpckpt::fds {
namespace {

class EpollHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar&) const override {
    nlohmann::json targets = nlohmann::json::array();
    for (const std::string& line : src.info->lines) {
      if (line.rfind("tfd:", 0) != 0) continue;
      int tfd = 0;
      unsigned events = 0;
      unsigned long long data = 0;
      if (std::sscanf(line.c_str(), "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
        return make_error(EINVAL, "parse", src.info->where + " ('" + line + "')");
      targets.push_back({{"fd", tfd}, {"events", events}, {"data", data}});
    }
    f.details["targets"] = targets;
    return ok();
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader&, FdObject& o) const override {
    std::vector<nlohmann::json> targets;
    WPCKPT_TRY(detail(f, "targets", targets));
    for (size_t i = 0; i < targets.size(); ++i) {
      EpollTarget t{f.fd, -1, 0, 0};
      state::JsonReader r(targets[i], "fd " + std::to_string(f.fd) + " details.targets[" + std::to_string(i) + "]");
      r.req("fd", t.fd);
      r.opt("events", t.events);
      r.opt("data", t.data);
      WPCKPT_TRY(r.result());
      o.epoll_targets.push_back(t);
    }
    return ok();
  }

  int32_t create(FdObject& o) const override {
    o.tmp[0] = epoll_create1(0);
    return o.tmp[0] < 0 ? kStepEpoll : 0;
  }
};

constinit const EpollHandler kEpoll;

}  // namespace

const FdHandler& epoll_handler() { return kEpoll; }

}  // namespace wpckpt::fds
