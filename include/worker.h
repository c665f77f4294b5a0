/* A worker: one thread, one core, one io back end. It runs the clock and
 * the tick, takes a new configuration from the main thread (runtime
 * generations) and drains on stop; its connections are the relay's. */
#ifndef RINGRELAY_WORKER_H
#define RINGRELAY_WORKER_H

#include "worker-t.h"

#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

/* Sets up pools sized from rt; listen_fd[] are the worker's own listeners
 * (listen_li[i]: the listener of listen_fd[i]), active_total the count of
 * open connections all workers share. Returns 0 or -errno. */
int worker_init(struct worker *w, int id, struct runtime *rt, const int *listen_fd,
                const uint8_t *listen_li, int n_listen, atomic_uint *active_total);

void worker_fini(struct worker *w);

/* Starts the thread. The thread sets up its back end, then runs it until
 * stop is set. */
int worker_start(struct worker *w, const struct io_backend *io, int cpu, sem_t *started);

/* Reads the monotonic clock into w->now_ms. */
void worker_clock(struct worker *w);

/* Milliseconds until the next tick is due (for the back end's wait). */
int worker_ms_to_tick(struct worker *w);

/* A round: one job posted to every worker at once, each done at the
 * worker's next tick (within 100 ms), all in parallel; the poster polls
 * and never waits. Posted from one thread (the stats thread). */
struct worker_round *worker_round_start(struct worker *ws, int n, enum worker_job_kind kind,
                                        const uint8_t *slots);

/* Does the jobs posted to w since the last call, oldest first (the
 * worker's tick calls it). */
void worker_jobs_run(struct worker *w);

/* How many workers have not done their job yet. */
int worker_round_pending(const struct worker_round *rd);

/* Frees a round none of whose jobs is pending any more (or whose workers
 * have stopped). */
void worker_round_free(struct worker_round *rd);

/* Runs timers and accept back-off; the back end calls it when a tick is due. */
void worker_tick(struct worker *w);

#endif
