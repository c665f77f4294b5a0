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

#endif
