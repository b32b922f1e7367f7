// How a dumped process was tracked (lib/attach), as images and --json say it.
#pragma once

#include <nlohmann/json.hpp>

#include "lib/attach/attach.hpp"

namespace wpckpt::dump {

inline nlohmann::json attach_json(const attach::AttachReport& a) {
  nlohmann::json j = {{"tracking", a.tracking}, {"uffd_fd", a.uffd_fd}, {"state_fd", a.state_fd}, {"route", a.route}};
  if (a.tracking == "new") {
    j["reason"] = a.reason;
    j["frozen_ms"] = a.frozen_ms;
  }
  return j;
}

}  // namespace wpckpt::dump
