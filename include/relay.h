/* The connection state machine, as the worker calls it; the io back ends
 * complete its operations through io.h's relay_on_*(). Its pools are in
 * relay_pool.h, its handshake in relay_handshake.h, its accounting in
 * relay_account.h. */
#ifndef RINGRELAY_RELAY_H
#define RINGRELAY_RELAY_H

#include "conn.h"
#include "io.h"
#include "relay_handshake.h" /* relay_set_instance(), which main calls */

/* Closes c: gracefully (FIN) or, with abort, with a reset on both sockets.
 * Cancels in-flight operations; the memory is reused only after the last
 * completes. */
void conn_close(struct worker *w, struct conn *c, int abort);

/* Runs the timers that have expired (called by worker_tick). */
void relay_timers_run(struct worker *w);

/* Gives the connections waiting for a descriptor another try (called by
 * worker_tick). */
void relay_fd_wait_retry(struct worker *w);

/* Resets every open connection of w (the drain deadline passed). */
void relay_close_all(struct worker *w);

/* Resets w's connections to the servers whose counter slots are set in
 * slots, a bit each (shutdown sessions server), each ended as
 * server_shutdown, in one pass. Returns how many. */
uint32_t relay_close_servers(struct worker *w, const uint8_t *slots);

#endif
