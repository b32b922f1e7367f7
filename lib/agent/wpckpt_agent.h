/* wpckpt agent: makes a process a cooperating wpckpt target.
 *
 * The agent creates a userfaultfd with asynchronous write-protect (and no
 * EVENT_* feature, so the process never waits for anyone) and keeps it open,
 * close-on-exec, for the life of the process. The wpckpt tool takes a copy of
 * it with pidfd_getfd (which needs ptrace-attach rights over the process, so
 * no other user can reach it) and does all tracking from outside. The agent
 * runs no thread and adds no work to the program after start.
 *
 * Two ways to use it:
 *  - `wpckpt run -- CMD ARGS` preloads libwpckpt-agent.so; its constructor
 *    calls wpckpt_agent_start(). Nothing to change in the program.
 *  - Static programs (or programs that want control) link libwpckpt-agent.a
 *    and call wpckpt_agent_start() early in main(), before creating threads.
 *
 * After fork() the child closes the descriptors it inherited (they would
 * track the parent) and makes its own, so the child is a target of its own.
 * vfork()/posix_spawn() children exec at once; close-on-exec drops them.
 *
 * Environment: WPCKPT_AGENT=off disables the preloaded constructor.
 */
#ifndef WPCKPT_AGENT_H
#define WPCKPT_AGENT_H

#ifdef __cplusplus
extern "C" {
#endif

#define WPCKPT_AGENT_API __attribute__((visibility("default")))

/* Creates the userfaultfd and the state page. Returns 0 on success or when
 * already started, else a negative errno (the program keeps running; the
 * tool will report the errno). Not thread-safe against itself: call it once,
 * early. */
WPCKPT_AGENT_API int wpckpt_agent_start(void);

/* The agent's userfaultfd, or -1 when it has none. */
WPCKPT_AGENT_API int wpckpt_agent_uffd(void);

/* The UFFDIO_API features the agent enabled (0 when it has no uffd). */
WPCKPT_AGENT_API unsigned long long wpckpt_agent_features(void);

/* Closes the agent's descriptors: tracking stops once the tool's copy is
 * closed too (the kernel then removes every write-protect mark). */
WPCKPT_AGENT_API void wpckpt_agent_stop(void);

#ifdef __cplusplus
}
#endif

#endif /* WPCKPT_AGENT_H */
