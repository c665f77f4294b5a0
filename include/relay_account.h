/* Accounting and diagnosis: what a connection adds to the counters and the
 * access log, names for log lines, and the one look at each direction's
 * first event that tells a backend refusing the PROXY header. It records
 * and logs; it never changes what happens to a connection. */
#ifndef RINGRELAY_RELAY_ACCOUNT_H
#define RINGRELAY_RELAY_ACCOUNT_H

#include "conn.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The connection's access log extras, made on first use (NULL if out of
 * memory: the line then lacks them). */
struct conn_extra *conn_extra(struct conn *c);

/* c has ended (closed, nothing in flight): its line in the access log, and
 * what it adds to its listener's, backend's and server's counters. */
void account_conn_end(struct worker *w, struct conn *c);

/* A client on listen_fd[bind] refused before it had a slot, for end
 * (END_REFUSED_LIMIT: the worker is at --max-connections;
 * END_LISTENER_OFF: the listener is disabled): its counters, and its
 * access log line. fd is still open. */
void account_refused(struct worker *w, int fd, int bind, enum conn_end end);

/* c's connect failed with res (-errno): counted by cause for its server. */
void account_connect_failed(struct worker *w, struct conn *c, int res);

/* What direction d brought before its first byte was relayed (call only
 * while c->dir[d].moved is 0): res > 0 bytes at p, 0 its end, -errno its
 * failure. Notes a client speaking TLS, times the backend's first byte,
 * and says, once, when the backend most likely refused the PROXY header. */
void account_first_event(struct worker *w, struct conn *c, int d, int res, const uint8_t *p);

/* Names c's server in logs, or its backend before a server is picked. */
const char *conn_server_name(const struct worker *w, const struct conn *c, char *buf, size_t cap);

/* Writes a line for each of w's open connections, at most max. */
void relay_dump_conns(struct worker *w, FILE *out, uint32_t max);

#endif
