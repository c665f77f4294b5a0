/* The state of each server and listener that outlives a configuration:
 * what an operator set (a server's admin state and weight, a listener
 * disabled) and a server's health. This module owns it: one entry per
 * counter slot (registry.h), shared by every configuration that has the
 * server or listener, old ones still finishing connections included. A
 * reload or a DNS change carries all of it by the slot it assigns, and by
 * nothing else; a server removed and added back later starts fresh, and
 * a restart starts from the file. */
#ifndef RINGRELAY_SERVER_STATE_H
#define RINGRELAY_SERVER_STATE_H

#include <stdatomic.h>
#include <stdint.h>

/* What an operator sets on a server at runtime (set server): no new
 * connections in drain, nor health checks in maint. */
enum server_admin { SERVER_READY, SERVER_DRAIN, SERVER_MAINT };

extern const char *const server_admin_name[3];

struct server_state {
    atomic_int admin;      /* enum server_admin */
    atomic_uint weight;    /* what picks use: as configured until set */
    uint32_t weight_cfg;   /* as configured, when the slot was last bound */
    int weight_set;        /* set at runtime */
    atomic_int up;         /* health checks, and connect failures (passive) */
    atomic_int proven;     /* a check passed (or there are none): counts for readiness */
    atomic_uint fails;     /* connects failed in a row */
    atomic_ullong changes; /* health changes, for the stats */
    int checked;           /* bound last by a backend that runs health checks */
};

struct listener_state {
    atomic_int off; /* disable listener: its clients are reset as they arrive */
};

/* st as a new server's: ready at weight, up unless unresolved (a DNS name
 * with no address yet), proven when not checked (there is nothing to
 * pass). A pool's own before its slot is bound, and a fresh slot's. */
void server_state_init(struct server_state *st, uint32_t weight, int unresolved, int checked);

/* The state of server slot slot, and of listener slot slot. */
struct server_state *server_state_of(int slot);
struct listener_state *listener_state_of(int slot);

/* A server of a new configuration takes its slot's state. fresh (a slot
 * new to it, or whose server the configuration before did not have):
 * as new. Kept: what the operator set stays, but a weight set at runtime
 * is dropped, with a warning naming backend and key, if the configured
 * weight changed (the file is the newer word); its health stays where
 * checks ran before and run now, and is a new server's otherwise.
 * dns_name: the DNS name the server is an address of (NULL: none), whose
 * state a fresh server takes (server_state_name_set()). Main thread,
 * under the registry's lock. */
struct server_state *server_state_bind(int slot, int fresh, const char *backend, const char *key,
                                       const char *dns_name, uint32_t weight, int unresolved,
                                       int checked);
void listener_state_bind(int slot, int fresh);

/* A health change of st: counted. */
void server_state_changed(struct server_state *st);

/* What an operator set on a DNS name (set server BACKEND/NAME state ...)
 * holds for every address the name has, those it gains later included:
 * a fresh server bound with that name takes it, until the name is set
 * ready again. At most SERVER_STATE_NAMES names at once; under the
 * process's runtime lock, as the bindings are. Returns 0, or -ENOSPC. */
#define SERVER_STATE_NAMES 64
int server_state_name_set(const char *backend, const char *name, enum server_admin admin);

/* Marks every name's entry unused; the bindings of a configuration mark
 * those it still has, and server_state_names_sweep() forgets the rest
 * (a name removed from the file). */
void server_state_names_mark(void);
void server_state_names_sweep(void);

#endif
