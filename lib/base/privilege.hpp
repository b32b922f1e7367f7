// Does this process have privileges its real user may not have, and the
// test hooks read from the environment, which must then be ignored.
//
// wpckpt may run with more privilege than the user who started it: a copy
// with file capabilities (setcap cap_checkpoint_restore,cap_sys_ptrace+ep, as
// restore's hint suggests) or a setuid/setgid one. Its environment then
// comes from a less privileged user, so nothing in it may change what wpckpt
// does to other processes: a fault point (WPCKPT_FAULT_POINT) would let that
// user leave any process stopped. Test hooks are ignored
//  - in secure-execution mode (getauxval(AT_SECURE): the kernel says the exec
//    raised privileges),
//  - whenever the real and effective user or group ids differ,
//  - whenever the binary carries file capabilities (security.capability),
//    even when root runs it,
//  - always, in a build configured with -DWPCKPT_TEST_HOOKS=OFF.
// Other variables: WPCKPT_DISABLE_FEATURES stays honoured: it only makes
// wpckpt treat a feature as missing (use a fallback or refuse), which takes
// nothing from anyone but the caller and grants nothing. WPCKPT_AGENT_LIBRARY
// (`wpckpt run`) is ignored in an elevated run, like a hook. The agent's
// WPCKPT_AGENT=off is read by the target itself, with its own credentials,
// and only turns the agent off.
#pragma once

namespace wpckpt {

// The exec that started us raised privileges (AT_SECURE, or real and
// effective ids differ): capabilities we hold are not the real user's own.
bool exec_raised_privileges();

// exec_raised_privileges(), or the binary has file capabilities. Computed once.
bool runs_elevated();

// getenv(name) for a test hook: null when hooks are off (see above).
const char* test_hook_env(const char* name);

}  // namespace wpckpt
