/* What a worker's connections draw on: connection slots, buffers, pipes,
 * the queues of directions waiting for a buffer and of connections waiting
 * for a descriptor, and the timer lists. Bookkeeping only: it starts no
 * operation, and sets no state but a slot's first and last. */
#ifndef RINGRELAY_RELAY_POOL_H
#define RINGRELAY_RELAY_POOL_H

#include "conn.h"

#include <stdatomic.h>
#include <stdint.h>

/* Sizes w's pool for max_conns connections (any worker may hold them all)
 * over all workers, counted in active_total, and up to max_pipes splice
 * pipes of its own (0: every direction copies). Returns 0 or -ENOMEM (then
 * relay_pool_fini() frees what was made). */
int relay_pool_init(struct worker *w, uint32_t max_conns, uint32_t max_pipes,
                    atomic_uint *active_total);

/* Closes what open connections and pipes still hold (a worker shutting
 * down), and frees the pool. */
void relay_pool_fini(struct worker *w);

/* A generation's timer lists and their timeouts, from the settings of the
 * backend or listener each belongs to; the round-robin state starts over. */
void relay_gen_init(struct relay_gen *g, const struct runtime *rt);

/* Frees what relay_gen_init() made for g on rt. */
void relay_gen_fini(struct relay_gen *g, const struct runtime *rt);

/* Takes a slot for a new connection on the current generation, or returns
 * NULL when all workers together are at --max-connections. */
struct conn *conn_alloc(struct worker *w);

/* Closes c's sockets and frees what it allocated, with no bookkeeping. */
void conn_discard(struct conn *c);

/* Gives c's slot back (c discarded, nothing of it in flight). */
void conn_slot_put(struct worker *w, struct conn *c);

/* Puts c on the timer list of kind (TIMER_NONE: none) from now. */
void timer_set(struct worker *w, struct conn *c, enum timer_kind kind);

/* Activity: restarts an inactivity timer, at most so often. */
void conn_touch(struct worker *w, struct conn *c);

/* The head of a timer list if it has expired, else NULL. */
struct conn *timer_expired(struct worker *w, int g, int kind, int owner);

/* Gives buffer bid back to the back end's pool. Returns the connection
 * whose direction *d waited for one (taken off the queue), or NULL. */
struct conn *buf_put(struct worker *w, uint16_t bid, int *d);

/* Queues a direction that found the buffer pool empty; unstarve() takes
 * it off again (c closing). */
void starve(struct worker *w, struct conn *c, int d);
void unstarve(struct worker *w, struct conn *c, int d);

/* Takes an empty pipe for dir, making it on first use. Returns 0 or -errno
 * (-ENOSPC when all pipes are held). */
int pipe_get(struct worker *w, struct dir *dir);

/* Returns dir's pipe, if it holds one, to the pool. */
void pipe_release(struct worker *w, struct dir *dir);

/* Queues c to wait for a descriptor. Returns 0, or -ENOSPC (queue full). */
int fd_wait_add(struct worker *w, struct conn *c);

/* Takes the whole queue, oldest first, into out; returns how many. */
uint32_t fd_wait_take(struct worker *w, struct fd_waiter *out);

/* Puts waiters back at the end of the queue, in order. */
void fd_wait_requeue(struct worker *w, const struct fd_waiter *waiting, uint32_t n);

#endif
