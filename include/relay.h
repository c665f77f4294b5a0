/* The connection state machine: accept, connect, PROXY header, relay both
 * directions (copy through pooled buffers, or splice(2) through pooled
 * pipes), half-close, reset, timeouts. Back-end independent. */
#ifndef RINGRELAY_RELAY_H
#define RINGRELAY_RELAY_H

#include "worker.h"

#include <stdio.h>

/* Closes c: gracefully (FIN) or, with abort, with a reset on both sockets.
 * Cancels in-flight operations; the memory is reused only after the last
 * completes. */
void conn_close(struct worker *w, struct conn *c, int abort);

/* Closes c's sockets and frees what it allocated, with no bookkeeping:
 * for conn_free(), and for a worker shutting down with c still open. */
void conn_discard(struct conn *c);

/* Gives the connections waiting for a descriptor another try (called by
 * worker_tick). */
void relay_fd_wait_retry(struct worker *w);

/* Timer expiry for c (called by worker_tick). */
void relay_on_timeout(struct worker *w, struct conn *c);

/* This process's random instance id: the first part of every UNIQUE_ID
 * TLV, so ids stay unique across restarts and relays. */
void relay_set_instance(uint64_t id);

/* A buffer came back to the pool: wake a starved direction if any. */
void relay_buf_put(struct worker *w, uint16_t bid);

/* Resets every open connection of w (the drain deadline passed). */
void relay_close_all(struct worker *w);

/* Writes a line for each of w's open connections, at most max. */
void relay_dump_conns(struct worker *w, FILE *out, uint32_t max);

#endif
