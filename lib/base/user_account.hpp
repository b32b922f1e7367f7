// A user's passwd entry and the groups it may be in, as the system's user
// database (getpwuid_r, getgrouplist) says: the one lookup behind both
// "which credentials may this image's owner have had" (restore) and "open
// this file as the image's owner" (lib/fds/recorded_file).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt {

struct UserAccount {
  std::string name;
  gid_t gid = 0;               // primary group
  std::vector<gid_t> groups;   // every group, the primary one included
};

// nullopt when `uid` has no passwd entry.
Result<std::optional<UserAccount>> user_account(uid_t uid);

}  // namespace wpckpt
