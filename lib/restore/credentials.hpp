// The credentials of a restored process: the ones recorded in the image,
// never the restorer's. The new process starts as a fork of wpckpt (its
// creds are the restorer's, often root with every capability); the last step
// of a restore, after everything that needs privilege (clone3 set_tid,
// PR_SET_MM_MAP), switches every thread to the recorded ids, groups,
// capability sets, securebits and no_new_privs by injected calls (creds are
// per thread in the kernel).
//
// What an image may ask for: only what its owner could have had. An image
// owned by a user other than root may record that user's uid only, groups of
// that user only (its passwd entry and getgrouplist), and no capability in the
// effective, permitted, inheritable or ambient sets; a bounding set, securebits
// and no_new_privs only take away and are always allowed. Anything else is
// refused before a process is created. A root-owned image may record anything
// the restorer can set.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

// What switch_credentials() will do in each thread.
struct CredentialSwitch {
  bool needed = false;  // false: the recorded credentials are the restorer's own
  state::Credentials target;
  uint64_t bounding_to_drop = 0;  // capabilities to remove from the bounding set
  state::Credentials own;         // the restorer's, which the new process starts with
};

// Checks `recorded` against what the image's owner could have had and what
// this restorer can set; nothing is created yet.
Result<CredentialSwitch> plan_credentials(const state::Credentials& recorded, uid_t image_owner);

// Injected into one stopped thread of the new process (after its rseq,
// signals and the like, before its registers are set).
Result<void> switch_credentials(ptrace::Injector& inj, const CredentialSwitch& plan);

}  // namespace wpckpt::restore
