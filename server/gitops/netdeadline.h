/* capstan: deadlines for libgit2's network I/O (libgit2 1.5 has no timeouts of its own).
 * The GitOps engine registers a TCP stream that honours a per-thread deadline; other modules
 * that drive libgit2 over the network (cloud/git.c) use the same. Thread-safe: the deadline
 * is per thread. */
#ifndef CAPSTAN_GITOPS_NETDEADLINE_H
#define CAPSTAN_GITOPS_NETDEADLINE_H

#include <stdbool.h>

/* Registers the deadline-aware TCP stream with libgit2 (call with libgit2 initialised). */
int gitops_stream_register(void);
/* Sets the calling thread's deadline for network I/O to now + timeout_ms (<= 0: none) and clears
 * the timed-out flag. */
void gitops_net_deadline_set(long long timeout_ms);
/* True if the deadline passed since the last gitops_net_deadline_set on this thread. */
bool gitops_net_deadline_passed(void);
/* True if an I/O call gave up because of the deadline. */
bool gitops_net_timed_out(void);

#endif
