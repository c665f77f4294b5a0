/* The handshake: what happens on a client connection before the backend
 * connection is made. A trusted client's inbound PROXY header, the
 * ClientHello peek, routing to a backend, the per-source limit, and the
 * outbound PROXY header for the backend chosen. It decides; the state
 * machine (relay.c) acts on what it returns. */
#ifndef RINGRELAY_RELAY_HANDSHAKE_H
#define RINGRELAY_RELAY_HANDSHAKE_H

#include "conn.h"

#include <stddef.h>
#include <stdint.h>

/* What the state machine does next with a connection in its handshake. */
enum hs_next {
    HS_POLL,         /* wait for the client to be readable (it may be already) */
    HS_POLL_DRAINED, /* ... having just found nothing more to read */
    HS_CONNECT,      /* backend chosen, its header built: connect */
    HS_CLOSE,        /* refused or failed (counted, logged): close */
    HS_RESET,        /* ... with a reset */
};

/* This process's random instance id, the first part of every UNIQUE_ID
 * TLV, so ids stay unique across restarts and relays. */
void relay_set_instance(uint64_t id);

/* A client just accepted, its address known. */
enum hs_next handshake_begin(struct worker *w, struct conn *c);

/* The client became readable in CONN_HEADER or CONN_PEEK. */
enum hs_next handshake_read(struct worker *w, struct conn *c);

/* An untrusted client's first bytes, p[0..len), on a listener that takes
 * inbound PROXY headers from trusted ones (CONN_UNTRUSTED, cleared here:
 * only the first bytes are looked at). Returns 1 if they look like a
 * header (refused: counted and logged; reset it), else 0. */
int handshake_untrusted(struct worker *w, struct conn *c, const uint8_t *p, size_t len);

/* c's header or peek timer expired: counted and logged; close it. */
void handshake_timed_out(struct worker *w, struct conn *c);

#endif
