/* A backend's servers and how a connection picks one: smooth weighted round
 * robin, least connections, or consistent hashing of the client address.
 * Servers that are down, full, or already tried are passed over. No I/O;
 * the ring for hashing is allocated once, when the pool is built. */
#ifndef RINGRELAY_POOL_H
#define RINGRELAY_POOL_H

#include "config.h"
#include "server_state.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

/* Points on the hash ring per unit of weight, fewer when all of them
 * would pass POOL_RING_MAX. */
#define POOL_POINTS_PER_WEIGHT 100
#define POOL_RING_MAX (1U << 20)

struct pool_member {
    char key[CONFIG_PATH_MAX + 8]; /* the address as text: what the ring hashes */
    char name[CONFIG_NAME_MAX];    /* from the configuration, or the DNS name, or "" */
    int unresolved;                /* a DNS name with no address yet: always down */
    int dns;                       /* an address of a DNS name (name: that one, or its own) */
    uint32_t weight;               /* as configured: the ring's points */
    /* What an operator set and its health: own until the registry binds
     * the server to its slot's (server_state.h), shared from then on. */
    struct server_state *st;
    struct server_state own;
    uint32_t max_conns; /* 0: no limit */
    atomic_uint active; /* open connections, all workers */
};

struct pool_point {
    uint64_t hash;
    int member;
};

struct pool {
    enum balance balance;
    int n;
    struct pool_member *m;   /* n of them */
    struct pool_point *ring; /* sorted by hash; client_ip_hash only */
    size_t n_ring;
};

/* One worker's round-robin state for a pool: no sharing on the data path. */
struct pool_rr {
    int64_t *current; /* per server; NULL for the balances that need none */
    unsigned next;    /* least_conn tie-break rotation */
};

/* The servers one connection has tried, in order: a retry passes them over. */
struct pool_tried {
    int16_t s[CONFIG_MAX_RETRIES + 1];
    uint8_t n;
};

static inline void pool_tried_add(struct pool_tried *t, int s)
{
    if (t->n < CONFIG_MAX_RETRIES + 1)
        t->s[t->n++] = (int16_t)s;
}

/* Whether m takes new connections as an operator set it: ready, with a
 * weight. */
static inline int pool_admin_open(const struct pool_member *m)
{
    return atomic_load_explicit(&m->st->admin, memory_order_relaxed) == SERVER_READY &&
           atomic_load_explicit(&m->st->weight, memory_order_relaxed) > 0;
}

/* Builds p from b's servers, all up. Returns 0 or -ENOMEM. */
int pool_build(struct pool *p, const struct config_backend *b);

void pool_free(struct pool *p);

/* A worker's round-robin state for p. Returns 0 or -ENOMEM. */
int pool_rr_init(struct pool_rr *rr, const struct pool *p);
void pool_rr_fini(struct pool_rr *rr);

/* Picks a server for client (its address only; the port does not count):
 * up, open (pool_admin_open), below its max_conns, and not in skip (NULL:
 * none tried). Returns the
 * server's index, or -1 when no server qualifies. */
int pool_pick(const struct pool *p, struct pool_rr *rr, const struct sockaddr *client,
              const struct pool_tried *skip);

/* A 64-bit hash of len bytes (FNV-1a, then a finalizer that spreads it). */
uint64_t pool_hash(const void *data, size_t len);

#endif
