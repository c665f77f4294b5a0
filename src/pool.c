/* Server selection: nginx's smooth weighted round robin, least connections
 * relative to weight, and a consistent-hash ring (ketama-style: weighted
 * points per server; a server that is down passes its keys to the next
 * point clockwise, so only its own clients move). */
#include "pool.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t pool_hash(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    /* FNV alone clusters on short, similar keys: finish with a mix. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static int point_cmp(const void *a, const void *b)
{
    const struct pool_point *x = a, *y = b;

    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Server i's points on the ring: its weight's share of at most
 * POOL_RING_MAX, and one at least. */
static uint32_t ring_points(const struct pool *p, int i, uint64_t weights)
{
    uint64_t n = (uint64_t)p->m[i].weight * POOL_POINTS_PER_WEIGHT;

    if (weights * POOL_POINTS_PER_WEIGHT > POOL_RING_MAX)
        n = (uint64_t)p->m[i].weight * POOL_RING_MAX / weights;
    return n ? (uint32_t)n : 1;
}

static int ring_build(struct pool *p)
{
    uint64_t weights = 0;
    size_t total = 0, k = 0;
    char label[sizeof(p->m[0].key) + 16];

    for (int i = 0; i < p->n; i++)
        weights += p->m[i].weight;
    for (int i = 0; i < p->n; i++)
        total += ring_points(p, i, weights);
    if (total == 0)
        return 0; /* no servers: every pick finds none */
    p->ring = calloc(total, sizeof(*p->ring));
    if (!p->ring)
        return -ENOMEM;
    for (int i = 0; i < p->n; i++) {
        for (uint32_t r = 0, points = ring_points(p, i, weights); r < points; r++) {
            int n = snprintf(label, sizeof(label), "%s#%u", p->m[i].key, r);
            p->ring[k].hash = pool_hash(label, (size_t)n);
            p->ring[k++].member = i;
        }
    }
    qsort(p->ring, total, sizeof(*p->ring), point_cmp);
    p->n_ring = total;
    return 0;
}

int pool_build(struct pool *p, const struct config_backend *b)
{
    char addr[ADDR_STRLEN];

    memset(p, 0, sizeof(*p));
    p->balance = b->balance;
    p->m = calloc(b->n_servers ? (size_t)b->n_servers : 1, sizeof(*p->m));
    if (!p->m)
        return -ENOMEM;
    p->n = b->n_servers;
    for (int i = 0; i < p->n; i++) {
        const struct config_server *s = &b->servers[i];
        struct pool_member *m = &p->m[i];
        int unresolved = !s->is_unix && !s->inet.sa.sa_family; /* a name with no address */
        if (s->is_unix)
            snprintf(m->key, sizeof(m->key), "unix:%s", s->path);
        else if (unresolved)
            snprintf(m->key, sizeof(m->key), "%.*s:%u", (int)(sizeof(m->key) - 7), s->host,
                     ntohs(s->inet.in.sin_port));
        else
            snprintf(m->key, sizeof(m->key), "%s", addr_format(&s->inet.sa, addr, sizeof(addr)));
        /* The runtime API knows a server by its name, or by the DNS name it
         * came from: all of its addresses at once. */
        snprintf(m->name, sizeof(m->name), "%.*s", (int)sizeof(m->name) - 1,
                 s->name[0] ? s->name : s->host);
        m->unresolved = unresolved;
        m->dns = !s->is_unix && s->host[0];
        m->weight = s->weight;
        m->st = &m->own;
        server_state_init(&m->own, s->weight, unresolved, b->health.mode != CHECK_OFF);
        m->max_conns = s->max_connections;
        atomic_init(&m->active, 0);
    }
    return p->balance == BALANCE_CLIENT_IP_HASH ? ring_build(p) : 0;
}

void pool_free(struct pool *p)
{
    free(p->ring);
    free(p->m);
    p->ring = NULL;
    p->m = NULL;
    p->n_ring = 0;
    p->n = 0;
}

int pool_rr_init(struct pool_rr *rr, const struct pool *p)
{
    rr->next = 0;
    rr->current = NULL;
    if (p->balance != BALANCE_ROUND_ROBIN)
        return 0;
    rr->current = calloc(p->n ? (size_t)p->n : 1, sizeof(*rr->current));
    return rr->current ? 0 : -ENOMEM;
}

void pool_rr_fini(struct pool_rr *rr)
{
    free(rr->current);
    rr->current = NULL;
}

static int tried(const struct pool_tried *t, int i)
{
    for (int k = 0; t && k < t->n; k++)
        if (t->s[k] == i)
            return 1;
    return 0;
}

static int usable(const struct pool *p, int i, const struct pool_tried *skip)
{
    const struct pool_member *m = &p->m[i];

    if (!atomic_load_explicit(&m->st->up, memory_order_relaxed) || !pool_admin_open(m) ||
        tried(skip, i))
        return 0;
    return !m->max_conns || atomic_load_explicit(&m->active, memory_order_relaxed) < m->max_conns;
}

/* Each usable server gains its weight; the richest is picked and pays the
 * total. Over a cycle every server is picked weight times, interleaved. */
static int pick_round_robin(const struct pool *p, struct pool_rr *rr, const struct pool_tried *skip)
{
    int64_t total = 0;
    int best = -1;

    if (!rr->current) { /* its state could not be made: rotate */
        for (int k = 0; k < p->n && best < 0; k++)
            if (usable(p, (int)((rr->next + (unsigned)k) % (unsigned)p->n), skip))
                best = (int)((rr->next + (unsigned)k) % (unsigned)p->n);
        rr->next++;
        return best;
    }
    for (int i = 0; i < p->n; i++) {
        int64_t weight = atomic_load_explicit(&p->m[i].st->weight, memory_order_relaxed);
        if (!usable(p, i, skip))
            continue;
        rr->current[i] += weight;
        total += weight;
        if (best < 0 || rr->current[i] > rr->current[best])
            best = i;
    }
    if (best >= 0)
        rr->current[best] -= total;
    return best;
}

/* Fewest open connections per unit of weight; ties rotate. */
static int pick_least_conn(const struct pool *p, struct pool_rr *rr, const struct pool_tried *skip)
{
    uint64_t best_num = 0, best_den = 1;
    int best = -1;

    for (int k = 0; k < p->n; k++) {
        int i = (int)((rr->next + (unsigned)k) % (unsigned)p->n);
        uint64_t act = atomic_load_explicit(&p->m[i].active, memory_order_relaxed);
        uint64_t weight = atomic_load_explicit(&p->m[i].st->weight, memory_order_relaxed);
        if (!usable(p, i, skip))
            continue;
        /* act / weight < best_num / best_den, without division */
        if (best < 0 || act * best_den < best_num * weight) {
            best = i;
            best_num = act;
            best_den = weight;
        }
    }
    rr->next++;
    return best;
}

static int pick_hash(const struct pool *p, const struct sockaddr *client,
                     const struct pool_tried *skip)
{
    const uint8_t *a = NULL;
    /* v4-mapped as IPv4: the same client whichever way it reached a socket */
    size_t len = client ? addr_bytes(client, &a) : 0, lo = 0, hi = p->n_ring;
    uint64_t h;

    if (!p->n_ring)
        return -1;
    h = pool_hash(a, len);
    while (lo < hi) { /* the first point at or after h */
        size_t mid = lo + (hi - lo) / 2;
        if (p->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < p->n_ring; k++) {
        int i = p->ring[(lo + k) % p->n_ring].member;
        if (usable(p, i, skip))
            return i;
    }
    return -1;
}

int pool_pick(const struct pool *p, struct pool_rr *rr, const struct sockaddr *client,
              const struct pool_tried *skip)
{
    switch (p->balance) {
    case BALANCE_LEAST_CONN:
        return pick_least_conn(p, rr, skip);
    case BALANCE_CLIENT_IP_HASH:
        return pick_hash(p, client, skip);
    case BALANCE_ROUND_ROBIN:
        break;
    }
    return pick_round_robin(p, rr, skip);
}
