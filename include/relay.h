/* The connection state machine: accept, connect, PROXY header, relay both
 * directions (copy through pooled buffers, or splice(2) through pooled
 * pipes), half-close, reset, timeouts. Back-end independent. */
#ifndef RINGRELAY_RELAY_H
#define RINGRELAY_RELAY_H

#include "worker.h"

/* Closes c: gracefully (FIN) or, with abort, with a reset on both sockets.
 * Cancels in-flight operations; the memory is reused only after the last
 * completes. */
void conn_close(struct worker *w, struct conn *c, int abort);

/* Timer expiry for c (called by worker_tick). */
void relay_on_timeout(struct worker *w, struct conn *c);

/* A buffer came back to the pool: wake a starved direction if any. */
void relay_buf_put(struct worker *w, uint16_t bid);

#endif
