// What the user who runs wpckpt can do with it on this machine: which verbs,
// by which route, and for what is missing the way around. `wpckpt check`
// prints it; the kernel features (features.hpp) say what the machine can
// do, this says what this user can.
//
// Derived from the probed features (run with this process's credentials),
// its effective capabilities (those a setuid or setcap copy raised count for
// what this copy can do, not for what its user may do to others:
// lib/ptrace/may_trace.hpp), and the Yama ptrace scope.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace wpckpt::probe {

struct Right {
  std::string key;         // stable: "checkpoint_own", "checkpoint_others", "route_cooperating", ...
  std::string what;        // one line: what it is
  bool can = false;
  std::string needs;       // what it needs, whoever runs it
  std::string why_not;     // when !can: what this user lacks
  std::string way_around;  // when !can: what to do instead ("" if nothing)
};

struct UserRights {
  uid_t uid = 0;
  bool root = false;        // euid 0
  bool elevated = false;    // a setuid or setcap copy (lib/base/privilege.hpp)
  int yama_scope = -1;      // /proc/sys/kernel/yama/ptrace_scope, -1 without Yama
  std::vector<Right> rights;
  bool can_checkpoint = false;  // pre-dump and dump of the user's own processes
  bool can_restore = false;     // restore of the user's own images
};

UserRights user_rights();

// What a user without CAP_CHECKPOINT_RESTORE does to restore its own image.
std::string restore_way_around();

}  // namespace wpckpt::probe
