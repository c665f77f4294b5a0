/* Listening sockets: every bind of every listener, one SO_REUSEPORT socket
 * per worker, opened before the workers start and kept, opened or closed
 * per address at a reload. */
#ifndef RINGRELAY_LISTENERS_H
#define RINGRELAY_LISTENERS_H

#include "process.h"

#include <semaphore.h>

/* Opens every listener (a bad address fails the start, nothing left half
 * done), sets up the workers and starts their threads, each posting
 * started. Returns 0 or -errno. */
int listeners_start(struct process *r, const struct io_backend *io, sem_t *started, const int *cpus,
                    int n_cpus);

/* Builds each worker's update for nrt into u[]: kept sockets for kept
 * addresses, new ones opened, gone ones to close. Returns 0 or -errno
 * (logged); u[] then holds what was built so far, for listeners_abandon. */
int listeners_update(struct process *r, struct runtime *nrt, struct worker_update **u);

/* Drops updates never handed over, closing the sockets opened for them. */
void listeners_abandon(struct process *r, struct worker_update **u);

/* A hot upgrade hands the listening sockets down: they are open across
 * exec, so the successor holds them too and takes those its configuration
 * names. Closing the last reference to a listener resets the connections
 * waiting in its queue; a socket the successor took outlives the
 * predecessor's close, and nothing in its queue is lost. */

/* Collects the TCP listeners a successor inherited (none otherwise), before
 * it opens anything. Returns how many. */
int listeners_inherit(struct process *r);

/* An inherited listener bound to exactly a, now the caller's (open across
 * exec still); or -1 if there is none (the caller binds beside it). */
int listeners_take(struct process *r, const union sockaddr_inet *a);

/* Once everything is open: closes what was inherited and not taken (binds
 * the configuration no longer names), and logs what was taken. */
void listeners_inherit_done(struct process *r);

#endif
