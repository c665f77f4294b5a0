/* Servers given by DNS name: each name's addresses, resolved with c-ares
 * at start and then every resolve_interval on a thread of its own (never
 * a worker), and what a configuration becomes with them: one server per
 * address. A name that fails to resolve keeps its last addresses; one
 * that never resolved stands as one server that stays down. */
#ifndef RINGRELAY_RESOLVER_H
#define RINGRELAY_RESOLVER_H

#include "config.h"

#include <stdint.h>

#define RESOLVER_MAX_NAMES 256  /* distinct names over all backends */
#define RESOLVER_MAX_ADDRS 1024 /* addresses kept per name: the lowest, sorted */

enum resolver_state { RESOLVER_NEVER, RESOLVER_OK, RESOLVER_FAILING };

/* One name's state, for the stats socket. */
struct resolver_stat {
    char backend[CONFIG_NAME_MAX];
    char host[CONFIG_HOST_MAX];
    enum resolver_state state;
    int addresses;
    uint64_t resolutions, failures, changes;
    char error[64]; /* the last failure ("" if none) */
};

struct resolver;

struct resolver *resolver_new(void);
void resolver_free(struct resolver *rs);

/* Takes in the names of c's servers (the thread stopped), and only
 * those: names it does not know yet are resolved now, all at once, within
 * a few seconds; each that fails is logged and stays down. Returns 0, or
 * -1 when there are more names than RESOLVER_MAX_NAMES (err filled). */
int resolver_sync(struct resolver *rs, const struct config *c, char *err, size_t errlen);

/* Replaces, in c, each server given by name with one server per address
 * the name has (port and settings the same), or with one that has no
 * address (sa_family 0) if it has none. Returns 0, or -1 (err filled)
 * when out of memory or over CONFIG_MAX_SERVERS_TOTAL. */
int resolver_expand(struct resolver *rs, struct config *c, char *err, size_t errlen);

/* Starts (or stops) the thread that resolves every name again at its
 * interval. Start returns 0 or -1. */
int resolver_start(struct resolver *rs);
void resolver_stop(struct resolver *rs);

/* Whether some name's addresses changed since the last call. */
int resolver_changed(struct resolver *rs);

/* Copies up to max names' state into out; returns how many. */
int resolver_report(struct resolver *rs, struct resolver_stat *out, int max);

#endif
