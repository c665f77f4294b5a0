/* Counter blocks, one per worker, and the slots that name their entries. */
#include "stats.h"

#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct end_reason stats_end[END_KINDS] = {
    [END_NONE] = {.name = "none", .what = "not ended yet (never in the access log)"},
    [END_CLIENT_CLOSED] = {.name = "client_closed",
                           .what =
                               "the client finished first (FIN), or closed before sending a byte",
                           .normal = 1},
    [END_BACKEND_CLOSED] = {.name = "backend_closed",
                            .what = "the server finished first (FIN)",
                            .normal = 1},
    [END_CLIENT_RESET] = {.name = "client_reset",
                          .what = "the client reset the connection, or a read or write on its side "
                                  "failed; the server side was reset too"},
    [END_BACKEND_RESET] = {.name = "backend_reset",
                           .what =
                               "the server reset the connection, or a read or write on its side "
                               "failed; the client was reset too (before the server's first byte: "
                               "see the diagnosis of a backend that refuses the PROXY header)"},
    [END_CONNECT_FAILED] = {.name = "connect_failed",
                            .what = "the connect to the server failed (refused, unreachable) and "
                                    "no other server could be tried"},
    [END_CONNECT_TIMEOUT] = {.name = "connect_timeout",
                             .what = "the connect to the server took longer than connect_timeout "
                                     "and no other server could be tried"},
    [END_NO_SERVER] =
        {.name = "no_server",
         .what = "no server of the backend could take it: every one down, full or tried already"},
    [END_IDLE_TIMEOUT] =
        {.name = "idle_timeout",
         .what = "nothing moved for idle_timeout (30 s at most once one side has finished)"},
    [END_HEADER_TIMEOUT] =
        {.name = "header_timeout",
         .what = "a trusted source sent no whole PROXY header within header_timeout"},
    [END_BAD_HEADER] = {.name = "bad_header",
                        .what = "a trusted source sent something that is not a valid PROXY header"},
    [END_UNTRUSTED_HEADER] = {.name = "untrusted_header",
                              .what =
                                  "a client that is not a trusted source sent a PROXY header (a "
                                  "forged address, or a proxy missing from trusted_sources)"},
    [END_PEEK_TIMEOUT] = {.name = "peek_timeout",
                          .what = "no whole TLS ClientHello within peek_timeout on a listener that "
                                  "reads it (routes, or the authority and alpn TLVs)"},
    [END_REFUSED_LIMIT] = {.name = "refused_limit",
                           .what = "refused at once: max_connections were open"},
    [END_SOURCE_LIMIT] = {.name = "source_limit",
                          .what =
                              "refused at once: its address had max_connections_per_source open"},
    [END_STOPPED] = {.name = "stopped",
                     .what = "reset when the relay stopped: a drain ran out, or SIGINT"},
    [END_LOCAL_ERROR] = {.name = "local_error",
                         .what = "the relay could not go on: out of descriptors or memory for it, "
                                 "or no descriptor for its backend socket within connect_timeout"},
    [END_HANDSHAKE_CLOSED] = {.name = "handshake_closed",
                              .what = "the client sent its FIN with its PROXY header or "
                                      "ClientHello incomplete: ended at once, not at the timeout"},
    [END_DENIED] = {.name = "denied",
                    .what = "reset at once: its address is in the listener's deny list, or "
                            "the listener has an allow list without it"},
    [END_RATE_LIMITED] = {.name = "rate_limited",
                          .what = "reset at once: its address opened "
                                  "max_connection_rate_per_source connections this second"},
    [END_LISTENER_OFF] = {.name = "listener_disabled",
                          .what = "reset at once: an operator disabled the listener "
                                  "(disable listener)"},
    [END_SERVER_SHUTDOWN] = {.name = "server_shutdown",
                             .what = "reset by an operator: shutdown sessions server"},
};

const char *const stats_fail_name[FAIL_KINDS] = {
    [FAIL_REFUSED] = "refused", [FAIL_TIMEOUT] = "timeout", [FAIL_UNREACHABLE] = "unreachable",
    [FAIL_RESET] = "reset",     [FAIL_OTHER] = "other",
};

#define BLOCK_SIZE ((sizeof(struct stats_block) + 63) & ~(size_t)63)

static _Atomic(struct stats_block *) blocks[STATS_MAX_WORKERS];
static _Atomic uint64_t health_changes[STATS_MAX_SERVERS];
/* What operators set (the runtime API), by slot like the counters. */
static struct server_ctl server_ctl[STATS_MAX_SERVERS];
static atomic_int listener_off[STATS_MAX_LISTENERS];

/* The registry: written by the main thread at start and reload, read by
 * the stats socket's thread; never touched by workers. */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stats_names names;

struct stats_block *stats_block_new(int id)
{
    struct stats_block *b;

    if (id < 0 || id >= STATS_MAX_WORKERS || !(b = aligned_alloc(64, BLOCK_SIZE)))
        return NULL;
    memset(b, 0, BLOCK_SIZE);
    atomic_store(&blocks[id], b);
    return b;
}

void stats_block_free(int id)
{
    if (id >= 0 && id < STATS_MAX_WORKERS)
        free(atomic_exchange(&blocks[id], NULL));
}

void stats_sum(struct stats_block *out)
{
    _Atomic uint64_t *dst = (_Atomic uint64_t *)out;
    const size_t words = sizeof(*out) / sizeof(uint64_t);

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < STATS_MAX_WORKERS; i++) {
        const _Atomic uint64_t *src = (const _Atomic uint64_t *)atomic_load(&blocks[i]);
        for (size_t k = 0; src && k < words; k++)
            atomic_store_explicit(&dst[k], stat_get(&dst[k]) + stat_get(&src[k]),
                                  memory_order_relaxed);
    }
}

int stats_worker_read(int id, struct stats_worker *out)
{
    const struct stats_block *b =
        id >= 0 && id < STATS_MAX_WORKERS ? atomic_load(&blocks[id]) : NULL;
    _Atomic uint64_t *dst = (_Atomic uint64_t *)out;
    const _Atomic uint64_t *src;

    if (!b)
        return -1;
    src = (const _Atomic uint64_t *)&b->w;
    for (size_t k = 0; k < sizeof(*out) / sizeof(uint64_t); k++)
        atomic_store_explicit(&dst[k], stat_get(&src[k]), memory_order_relaxed);
    return 0;
}

/* Finds the slot that same() matches among the *n used, or takes a new
 * one, or reuses one the new configuration does not have (live[i] < 0;
 * then *fresh is set). Returns the slot. */
static int slot_find(int *n, int max, const int32_t *live, int (*same)(int i, const void *ctx),
                     const void *ctx, int *fresh)
{
    int spare = -1;

    *fresh = 1;
    for (int i = 0; i < *n; i++) {
        if (same(i, ctx)) {
            *fresh = 0;
            return i;
        }
        if (spare < 0 && live[i] < 0)
            spare = i;
    }
    if (*n < max)
        return (*n)++;
    return spare < 0 ? 0 : spare;
}

/* Server m takes the runtime state of its slot: a new one starts ready at
 * its configured weight; one kept drops a weight set at runtime if the
 * file's weight changed (the file is the newer word). */
static void ctl_bind(struct pool_member *m, const char *backend, int slot, int fresh)
{
    struct server_ctl *ctl = &server_ctl[slot];

    if (fresh) {
        atomic_store(&ctl->admin, SERVER_READY);
        ctl->weight_set = 0;
    } else if (ctl->weight_cfg != m->weight && ctl->weight_set) {
        log_warn("backend %s: server %s: weight set to %u at runtime dropped: the configured "
                 "weight changed from %u to %u",
                 backend, m->key, atomic_load(&ctl->weight), ctl->weight_cfg, m->weight);
        ctl->weight_set = 0;
    }
    if (!ctl->weight_set)
        atomic_store(&ctl->weight, m->weight);
    ctl->weight_cfg = m->weight;
    m->ctl = ctl;
}

static int same_listener(int i, const void *name)
{
    return strcmp(names.listener[i], name) == 0;
}

static int same_backend(int i, const void *name)
{
    return strcmp(names.backend[i], name) == 0;
}

struct server_id {
    uint16_t backend;
    const char *key;
};

static int same_server(int i, const void *ctx)
{
    const struct server_id *id = ctx;

    return names.server[i].backend == id->backend && strcmp(names.server[i].key, id->key) == 0;
}

/* Marks everything not live, then live what rt has, claiming slots. */
void stats_assign(struct runtime *rt)
{
    const struct config *c = &rt->cfg;
    int fresh;

    pthread_mutex_lock(&names_lock);
    for (int i = 0; i < STATS_MAX_LISTENERS; i++)
        names.listener_index[i] = -1;
    for (int i = 0; i < STATS_MAX_BACKENDS; i++)
        names.backend_index[i] = -1;
    for (int i = 0; i < STATS_MAX_SERVERS; i++)
        names.server_index[i] = -1;
    for (int l = 0; l < c->n_listeners; l++) {
        int i = slot_find(&names.n_listeners, STATS_MAX_LISTENERS, names.listener_index,
                          same_listener, c->listeners[l].name, &fresh);
        if (fresh)
            atomic_store(&listener_off[i], 0);
        snprintf(names.listener[i], sizeof(names.listener[i]), "%s", c->listeners[l].name);
        names.listener_index[i] = (int32_t)l;
        rt->st_listener[l] = (uint16_t)i;
    }
    for (int b = 0; b < c->n_backends; b++) {
        int i = slot_find(&names.n_backends, STATS_MAX_BACKENDS, names.backend_index, same_backend,
                          c->backends[b].name, &fresh);
        snprintf(names.backend[i], sizeof(names.backend[i]), "%s", c->backends[b].name);
        names.backend_index[i] = (int32_t)b;
        rt->st_backend[b] = (uint16_t)i;
    }
    for (int b = 0; b < c->n_backends; b++) {
        for (int s = 0; s < rt->pools[b].n; s++) {
            const char *key = rt->pools[b].m[s].key;
            struct server_id id = {rt->st_backend[b], key};
            int i = slot_find(&names.n_servers, STATS_MAX_SERVERS, names.server_index, same_server,
                              &id, &fresh);
            ctl_bind(&rt->pools[b].m[s], c->backends[b].name, i, fresh);
            names.server[i].backend = rt->st_backend[b];
            snprintf(names.server[i].key, sizeof(names.server[i].key), "%s", key);
            names.server_index[i] = (int32_t)(b * CONFIG_MAX_SERVERS + s);
            rt->st_server[b][s] = (uint16_t)i;
        }
    }
    pthread_mutex_unlock(&names_lock);
}

void stats_names_read(struct stats_names *out)
{
    pthread_mutex_lock(&names_lock);
    memcpy(out, &names, sizeof(*out));
    pthread_mutex_unlock(&names_lock);
}

void stats_health_changed(int server_slot)
{
    atomic_fetch_add_explicit(&health_changes[server_slot], 1, memory_order_relaxed);
}

uint64_t stats_health_changes(int server_slot)
{
    return stat_get(&health_changes[server_slot]);
}

atomic_int *stats_listener_off(int listener_slot)
{
    return &listener_off[listener_slot];
}
