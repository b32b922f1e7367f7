#include "lib/probe/user_rights.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "lib/base/privilege.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/probe/capabilities.hpp"
#include "lib/probe/features.hpp"

namespace wpckpt::probe {
namespace {

constexpr const char kSetcap[] = "setcap cap_checkpoint_restore,cap_sys_ptrace+ep on a copy of wpckpt";

int read_yama_scope() {
  std::ifstream in("/proc/sys/kernel/yama/ptrace_scope");
  int scope = -1;
  if (!(in >> scope)) return -1;
  return scope;
}

// Every feature that `verb` refuses without, present.
bool verb_features_present(const std::vector<FeatureStatus>& all, const std::string& verb, std::string& missing) {
  for (const FeatureStatus& s : all) {
    if (s.present || std::find(s.needed_by.begin(), s.needed_by.end(), verb) == s.needed_by.end()) continue;
    missing = s.key + (s.disabled ? " (switched off)" : " (missing)");
    return false;
  }
  return true;
}

// Yama restricts PTRACE_MODE_ATTACH (ptrace and pidfd_getfd) beyond the uid rule.
std::string yama_refusal(int scope, bool ptrace_cap) {
  if (scope == 1 && !ptrace_cap)
    return "Yama ptrace_scope 1 lets a user trace only its own descendants; wpckpt is not the process's parent";
  if (scope == 2 && !ptrace_cap) return "Yama ptrace_scope 2 lets only CAP_SYS_PTRACE trace";
  if (scope == 3) return "Yama ptrace_scope 3 forbids ptrace to everyone";
  return {};
}

Right checkpoint_own(const std::vector<FeatureStatus>& all, const std::string& yama) {
  Right r{"checkpoint_own", "pre-dump, dump, watch and untrack of your own processes", false,
          "ptrace access to the process (same uid and gid, dumpable), and the kernel features pre-dump and dump "
          "need",
          {}, {}};
  std::string missing;
  if (!verb_features_present(all, "pre-dump", missing) || !verb_features_present(all, "dump", missing)) {
    r.why_not = "feature " + missing;
    r.way_around = "see the feature table above: a kernel with it (6.9 or newer, userfaultfd enabled)";
  } else if (!yama.empty()) {
    r.why_not = yama;
    r.way_around = "run wpckpt as root, or set kernel.yama.ptrace_scope=0";
  } else {
    r.can = true;
  }
  return r;
}

Right checkpoint_others(bool ptrace_cap, bool elevated) {
  Right r{"checkpoint_others", "checkpoint other users' processes", ptrace_cap && !elevated,
          "CAP_SYS_PTRACE of your own (root); one a setuid or setcap copy grants does not count", {}, {}};
  if (!r.can) {
    r.why_not = elevated && ptrace_cap ? "CAP_SYS_PTRACE comes from this copy of wpckpt, not from you"
                                       : "no CAP_SYS_PTRACE";
    r.way_around = "run wpckpt as root (sudo)";
  }
  return r;
}

// How a tracked process gets its userfaultfd: the process makes it, with its
// own credentials; user-mode-only needs nothing (docs/KERNEL.md §2).
std::string uffd_routes_text() {
  std::string routes;
  auto add = [&](const char* key, const char* text) {
    if (!has_feature(key)) return;
    routes += (routes.empty() ? "" : ", ") + std::string(text);
  };
  add("userfaultfd_syscall", "userfaultfd(2) (as you: CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)");
  add("userfaultfd_user_mode_only", "userfaultfd(2) user-mode-only (anyone)");
  add("dev_userfaultfd", "/dev/userfaultfd (as you: its file mode allows)");
  return routes.empty() ? "none: the process cannot create a userfaultfd" : routes;
}

Right route(const char* key, const char* what, const char* needs, const Right& own, bool seize) {
  Right r{key, what, own.can && seize, needs, {}, {}};
  bool uffd = has_feature("userfaultfd_user_mode_only") || has_feature("userfaultfd_syscall") ||
              has_feature("dev_userfaultfd");
  r.can = r.can && uffd;
  if (!r.can) {
    r.why_not = !own.can ? own.why_not : !seize ? "PTRACE_SEIZE is refused here" : "no userfaultfd route";
    r.way_around = own.can ? "see `wpckpt check --feature ptrace_seize`" : own.way_around;
  }
  r.needs += "; userfaultfd routes you have: " + uffd_routes_text();
  return r;
}

Right restore_own(const std::vector<FeatureStatus>& all, bool root) {
  Right r{"restore_own", "restore your own images (the process gets its old pid)", false,
          "CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (clone3 with set_tid, the /proc/PID/exe link), and the "
          "kernel features restore needs",
          {}, {}};
  std::string missing;
  bool cap = has_feature("cap_checkpoint_restore");
  if (!cap) {
    r.why_not = "neither CAP_CHECKPOINT_RESTORE nor CAP_SYS_ADMIN: restore cannot give the process its pid "
                "(clone3 set_tid) and refuses";
    r.way_around = restore_way_around();
  } else if (!verb_features_present(all, "restore", missing)) {
    r.why_not = "feature " + missing;
    r.way_around = root ? "see the feature table above" : "see the feature table above; or restore as root";
  } else {
    r.can = true;
  }
  return r;
}

Right restore_others(bool root) {
  Right r{"restore_others", "restore another user's image (--allow-other-owner)", root,
          "root: CAP_SETUID, CAP_SETGID and CAP_CHECKPOINT_RESTORE", {}, {}};
  if (!root) {
    r.why_not = "not root";
    r.way_around = "the image's owner restores it, or root";
  }
  return r;
}

Right watch_events() {
  Right r{"watch", "the BPF event queue (watch; pre-dumps that scan only what was written)",
          has_feature("bpf_fault_events"), "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), a kernel with BTF", {}, {}};
  if (!r.can) {
    r.why_not = "feature bpf_fault_events: " + feature("bpf_fault_events")->detail;
    r.way_around = "run wpckpt as root; without it pre-dumps scan the whole address space (same images)";
  }
  return r;
}

}  // namespace

std::string restore_way_around() {
  return "restore as root: `sudo wpckpt restore --allow-other-owner -D DIR` (the process runs with the "
         "credentials of the image, yours); or " +
         std::string(kSetcap) + " (restore then runs as you, with that capability only)";
}

UserRights user_rights() {
  UserRights u;
  u.uid = ::getuid();
  u.root = ::geteuid() == 0;
  u.elevated = exec_raised_privileges();
  u.yama_scope = read_yama_scope();
  const bool ptrace_cap = has_effective_capability(uapi::kCapSysPtrace);
  const std::vector<FeatureStatus> all = all_features();
  Right own = checkpoint_own(all, yama_refusal(u.yama_scope, ptrace_cap));
  const bool seize = has_feature("ptrace_seize");
  u.rights.push_back(own);
  u.rights.push_back(checkpoint_others(ptrace_cap, u.elevated));
  u.rights.push_back(route("route_cooperating", "cooperating route: a process started with `wpckpt run`",
                           "ptrace access (pidfd_getfd of the agent's descriptors); the agent creates the uffd",
                           own, true));
  u.rights.push_back(route("route_attached", "attached route: any process you may ptrace, started without the agent",
                           "ptrace access, freezing and syscall injection (PTRACE_SEIZE); the process creates the "
                           "uffd itself",
                           own, seize));
  Right restore = restore_own(all, u.root);
  u.rights.push_back(restore);
  u.rights.push_back(restore_others(u.root));
  u.rights.push_back(watch_events());
  u.can_checkpoint = own.can;
  u.can_restore = restore.can;
  return u;
}

}  // namespace wpckpt::probe
