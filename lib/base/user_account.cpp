#include "lib/base/user_account.hpp"

#include <grp.h>
#include <pwd.h>

namespace wpckpt {

Result<std::optional<UserAccount>> user_account(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
    return std::optional<UserAccount>();
  UserAccount account{pw.pw_name, pw.pw_gid, std::vector<gid_t>(64)};
  // getgrouplist says how many there are when the array is too small.
  for (int attempt = 0; attempt < 4; ++attempt) {
    int n = static_cast<int>(account.groups.size());
    if (::getgrouplist(pw.pw_name, pw.pw_gid, account.groups.data(), &n) >= 0) {
      account.groups.resize(static_cast<size_t>(n));
      return std::optional<UserAccount>(std::move(account));
    }
    account.groups.resize(std::max(static_cast<size_t>(n), account.groups.size() * 2));
  }
  return make_error(E2BIG, "list the groups of", std::string("user ") + pw.pw_name);
}

}  // namespace wpckpt
