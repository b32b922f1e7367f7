#include "lib/restore/credentials.hpp"

#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "lib/base/privilege.hpp"
#include "lib/base/user_account.hpp"
#include "lib/base/uapi/process.hpp"

namespace wpckpt::restore {

namespace {

// 16 KiB of gid_t: fits the injector's data area (checked again when used).
constexpr size_t kMaxGroups = 4096;

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The restorer's own credentials, as /proc/self/status and prctl tell them.
Result<state::Credentials> own_credentials() {
  std::ifstream in("/proc/self/status");
  if (!in) return errno_error("open", "/proc/self/status");
  state::Credentials c;
  std::string line;
  auto u32s = [](const std::string& text, std::vector<uint32_t>& out) {
    const char* p = text.data();
    const char* end = p + text.size();
    for (;;) {
      while (p < end && (*p == ' ' || *p == '\t')) ++p;
      uint32_t v = 0;
      auto [next, ec] = std::from_chars(p, end, v);
      if (ec != std::errc()) return;
      out.push_back(v);
      p = next;
    }
  };
  auto hex = [](const std::string& text) {
    uint64_t v = 0;
    size_t start = text.find_first_not_of(" \t");
    if (start != std::string::npos) std::from_chars(text.data() + start, text.data() + text.size(), v, 16);
    return v;
  };
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon), value = line.substr(colon + 1);
    std::vector<uint32_t> ids;
    if (key == "Uid" || key == "Gid") {
      u32s(value, ids);
      if (ids.size() != 4) return make_error(EPROTO, "read own credentials", key);
      (key == "Uid" ? c.uid : c.gid) = ids[0];
      (key == "Uid" ? c.euid : c.egid) = ids[1];
      (key == "Uid" ? c.suid : c.sgid) = ids[2];
      (key == "Uid" ? c.fsuid : c.fsgid) = ids[3];
    } else if (key == "Groups") {
      u32s(value, c.groups);
    } else if (key == "CapInh") c.cap_inheritable = hex(value);
    else if (key == "CapPrm") c.cap_permitted = hex(value);
    else if (key == "CapEff") c.cap_effective = hex(value);
    else if (key == "CapBnd") c.cap_bounding = hex(value);
    else if (key == "CapAmb") c.cap_ambient = hex(value);
    else if (key == "NoNewPrivs") c.no_new_privs = value.find('1') != std::string::npos;
  }
  int bits = ::prctl(PR_GET_SECUREBITS);
  if (bits < 0) return errno_error("prctl(PR_GET_SECUREBITS)");
  c.securebits = static_cast<uint32_t>(bits);
  return c;
}

std::vector<uint32_t> sorted(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

bool same(const state::Credentials& a, const state::Credentials& b) {
  return a.uid == b.uid && a.euid == b.euid && a.suid == b.suid && a.fsuid == b.fsuid && a.gid == b.gid &&
         a.egid == b.egid && a.sgid == b.sgid && a.fsgid == b.fsgid && sorted(a.groups) == sorted(b.groups) &&
         a.cap_effective == b.cap_effective && a.cap_permitted == b.cap_permitted &&
         a.cap_inheritable == b.cap_inheritable && a.cap_bounding == b.cap_bounding &&
         a.cap_ambient == b.cap_ambient && a.securebits == b.securebits && a.no_new_privs == b.no_new_privs;
}

Error refuse(const std::string& what, uid_t owner) {
  return make_error(EPERM, "restore credentials", what)
      .with_hint("the image's owner (uid " + std::to_string(owner) +
                 ") could not have run a process with these credentials; the image was changed after the dump, "
                 "or written as root and then handed to another user: do not restore it");
}

// The groups user `owner` may be in: primary and supplementary.
Result<std::vector<gid_t>> groups_of(uid_t owner) {
  WPCKPT_TRY_ASSIGN(std::optional<UserAccount> account, user_account(owner));
  if (!account)
    return make_error(ENOENT, "restore credentials", "uid " + std::to_string(owner) + " has no passwd entry")
        .with_hint("the image's owner must be a known user, so that its groups can be checked");
  return std::move(account->groups);
}

// The recorded credentials are no more than `owner` (not root) could have had.
Result<void> check_owner_could_have(const state::Credentials& c, uid_t owner) {
  for (uint32_t u : {c.uid, c.euid, c.suid, c.fsuid})
    if (u != owner)
      return refuse("process.json records uid " + std::to_string(u) + " in an image owned by uid " +
                        std::to_string(owner),
                    owner);
  WPCKPT_TRY_ASSIGN(std::vector<gid_t> allowed, groups_of(owner));
  std::vector<uint32_t> recorded{c.gid, c.egid, c.sgid, c.fsgid};
  recorded.insert(recorded.end(), c.groups.begin(), c.groups.end());
  for (uint32_t g : recorded)
    if (std::find(allowed.begin(), allowed.end(), static_cast<gid_t>(g)) == allowed.end())
      return refuse("process.json records gid " + std::to_string(g) + ", not a group of uid " + std::to_string(owner),
                    owner);
  const uint64_t caps = c.cap_effective | c.cap_permitted | c.cap_inheritable | c.cap_ambient;
  if (caps != 0)
    return refuse("process.json records capabilities " + hex64(caps) + " for an unprivileged user", owner);
  return ok();
}

uint64_t all_caps() {
  int last = 40;
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  if (in) in >> last;
  if (last < 0 || last > 63) last = 63;
  return last == 63 ? ~uint64_t{0} : (uint64_t{1} << (last + 1)) - 1;
}

// The restorer must be able to make every change (checked here so that a
// refusal comes before anything is created, not from a half-built process).
Result<void> check_restorer_can(const CredentialSwitch& plan, const state::Credentials& own) {
  const state::Credentials& c = plan.target;
  auto has = [&](int cap) { return (own.cap_effective >> cap) & 1; };
  auto missing = [](const std::string& what, const char* cap) {
    return make_error(EPERM, "restore credentials", what + " needs " + cap)
        .with_hint("restore as root, or as the user the process ran as");
  };
  const bool ids_change = c.uid != own.uid || c.euid != own.euid || c.suid != own.suid || c.fsuid != own.fsuid;
  const bool gids_change = c.gid != own.gid || c.egid != own.egid || c.sgid != own.sgid || c.fsgid != own.fsgid ||
                           sorted(c.groups) != sorted(own.groups);
  if (ids_change && !has(uapi::kCapSetuid)) return missing("switching to uid " + std::to_string(c.uid), "CAP_SETUID");
  if (gids_change && !has(uapi::kCapSetgid)) return missing("switching to gid " + std::to_string(c.gid), "CAP_SETGID");
  if ((plan.bounding_to_drop || c.securebits != own.securebits || ids_change) && !has(uapi::kCapSetpcap))
    return missing("changing the bounding set or securebits", "CAP_SETPCAP");
  const uint64_t wanted = c.cap_permitted | c.cap_effective | c.cap_inheritable | c.cap_ambient;
  if ((wanted & ~own.cap_permitted) != 0)
    return make_error(EPERM, "restore credentials",
                      "the process had capabilities " + hex64(wanted & ~own.cap_permitted) + " that wpckpt has not")
        .with_hint("restore with every capability the process had (as root)");
  if (own.no_new_privs && !c.no_new_privs)
    return make_error(EPERM, "restore credentials", "wpckpt runs with no_new_privs, the process did not")
        .with_hint("restore from a process without no_new_privs");
  return ok();
}

Result<void> injected(ptrace::Injector& inj, const char* what, long nr, uint64_t a1 = 0, uint64_t a2 = 0,
                      uint64_t a3 = 0, uint64_t a4 = 0, uint64_t a5 = 0) {
  WPCKPT_TRY(inj.checked_syscall(what, "in thread " + std::to_string(inj.tid()), nr, a1, a2, a3, a4, a5));
  return ok();
}

// setfs[ug]id returns the previous value, never an error: ask again to check.
Result<void> set_fs_id(ptrace::Injector& inj, long nr, uint32_t value, const char* what) {
  WPCKPT_TRY(inj.syscall(nr, value));
  WPCKPT_TRY_ASSIGN(long now, inj.syscall(nr, UINT32_MAX));
  if (static_cast<uint32_t>(now) != value)
    return make_error(EPERM, std::string("injected ") + what, std::to_string(value) + " in thread " + std::to_string(inj.tid()));
  return ok();
}

Result<void> set_capabilities(ptrace::Injector& inj, uint64_t effective, uint64_t permitted, uint64_t inheritable) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>(effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(inheritable >> (32 * i));
  }
  const uint64_t header_addr = inj.data(), data_addr = inj.data() + 64;
  WPCKPT_TRY(inj.write(header_addr, &header, sizeof header));
  WPCKPT_TRY(inj.write(data_addr, data, sizeof data));
  return injected(inj, "capset", SYS_capset, header_addr, data_addr);
}

Result<void> switch_ids_and_capabilities(ptrace::Injector& inj, const CredentialSwitch& plan);

}  // namespace

Result<CredentialSwitch> plan_credentials(const state::Credentials& recorded, uid_t image_owner) {
  if (image_owner != 0) WPCKPT_TRY(check_owner_could_have(recorded, image_owner));
  if (recorded.groups.size() > kMaxGroups)
    return make_error(E2BIG, "restore credentials", std::to_string(recorded.groups.size()) + " supplementary groups");
  WPCKPT_TRY_ASSIGN(state::Credentials own, own_credentials());
  CredentialSwitch plan;
  plan.target = recorded;
  if (same(recorded, own)) return plan;
  plan.needed = true;
  plan.bounding_to_drop = own.cap_bounding & ~recorded.cap_bounding & all_caps();
  plan.own = own;
  WPCKPT_TRY(check_restorer_can(plan, own));
  return plan;
}

Result<void> switch_credentials(ptrace::Injector& inj, const CredentialSwitch& plan) {
  if (plan.needed) WPCKPT_TRY(switch_ids_and_capabilities(inj, plan));
  // A change of effective ids made the process non-dumpable (fs.suid_dumpable);
  // a process that had turned dumping off (ssh-agent) gets that back too.
  if (!plan.needed && plan.target.dumpable == 1) return ok();
  return injected(inj, "prctl(PR_SET_DUMPABLE)", SYS_prctl, PR_SET_DUMPABLE, plan.target.dumpable == 1 ? 1 : 0);
}

namespace {

Result<void> switch_ids_and_capabilities(ptrace::Injector& inj, const CredentialSwitch& plan) {
  const state::Credentials& c = plan.target;
  const state::Credentials& own = plan.own;
  // Each step only when it changes something: an unprivileged restorer (a
  // setcap copy) may lower its capabilities but not call setgroups.
  // Groups first: changing them needs CAP_SETGID, which the uid switch may take away.
  if (sorted(c.groups) != sorted(own.groups)) {
    std::vector<gid_t> groups(c.groups.begin(), c.groups.end());
    if (groups.size() * sizeof(gid_t) > ptrace::Injector::data_size())
      return make_error(E2BIG, "restore credentials", std::to_string(groups.size()) + " supplementary groups");
    if (!groups.empty()) WPCKPT_TRY(inj.write(inj.data(), groups.data(), groups.size() * sizeof(gid_t)));
    WPCKPT_TRY(injected(inj, "setgroups", SYS_setgroups, groups.size(), inj.data()));
  }
  if (c.gid != own.gid || c.egid != own.egid || c.sgid != own.sgid)
    WPCKPT_TRY(injected(inj, "setresgid", SYS_setresgid, c.gid, c.egid, c.sgid));
  if (c.fsgid != c.egid) WPCKPT_TRY(set_fs_id(inj, SYS_setfsgid, c.fsgid, "setfsgid"));
  for (int cap = 0; cap < 64; ++cap)
    if ((plan.bounding_to_drop >> cap) & 1) WPCKPT_TRY(injected(inj, "prctl(PR_CAPBSET_DROP)", SYS_prctl, PR_CAPBSET_DROP, cap));
  if (c.uid != own.uid || c.euid != own.euid || c.suid != own.suid) {
    // Keep the permitted set across the uid switch; the recorded sets come after it.
    WPCKPT_TRY(injected(inj, "prctl(PR_SET_KEEPCAPS)", SYS_prctl, PR_SET_KEEPCAPS, 1));
    WPCKPT_TRY(injected(inj, "setresuid", SYS_setresuid, c.uid, c.euid, c.suid));
  }
  if (c.fsuid != c.euid) WPCKPT_TRY(set_fs_id(inj, SYS_setfsuid, c.fsuid, "setfsuid"));
  // A switch away from uid 0 empties the effective set: raise it again from
  // the permitted set for the steps that need CAP_SETPCAP.
  WPCKPT_TRY(set_capabilities(inj, own.cap_permitted, own.cap_permitted, c.cap_inheritable));
  WPCKPT_TRY(injected(inj, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL));
  for (int cap = 0; cap < 64; ++cap)
    if ((c.cap_ambient >> cap) & 1)
      WPCKPT_TRY(injected(inj, "prctl(PR_CAP_AMBIENT_RAISE)", SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap));
  // PR_SET_KEEPCAPS above set SECBIT_KEEP_CAPS: securebits are set whenever ids changed.
  const bool uid_changed = c.uid != own.uid || c.euid != own.euid || c.suid != own.suid;
  if (c.securebits != own.securebits || uid_changed)
    WPCKPT_TRY(injected(inj, "prctl(PR_SET_SECUREBITS)", SYS_prctl, PR_SET_SECUREBITS, c.securebits));
  WPCKPT_TRY(set_capabilities(inj, c.cap_effective, c.cap_permitted, c.cap_inheritable));
  if (c.no_new_privs && !own.no_new_privs)
    WPCKPT_TRY(injected(inj, "prctl(PR_SET_NO_NEW_PRIVS)", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1));
  return ok();
}

}  // namespace

}  // namespace wpckpt::restore
