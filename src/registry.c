/* The registry: which counter slot each listener, backend and server of a
 * configuration has, by name, so its counts and state outlive a reload. */
#include "registry.h"

#include "server_state.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Written by the main thread at start and reload, read by the stats
 * socket's thread and the access log; never touched by workers. */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct registry_names names;

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

/* Marks everything not live, then live what rt has, claiming slots. A
 * server slot that was not live before is fresh for its state: a server
 * removed and added back starts anew. */
void registry_assign(struct runtime *rt)
{
    static uint8_t was_live[STATS_MAX_SERVERS];
    const struct config *c = &rt->cfg;
    int fresh;

    pthread_mutex_lock(&names_lock);
    for (int i = 0; i < STATS_MAX_LISTENERS; i++)
        names.listener_index[i] = -1;
    for (int i = 0; i < STATS_MAX_BACKENDS; i++)
        names.backend_index[i] = -1;
    for (int i = 0; i < STATS_MAX_SERVERS; i++) {
        was_live[i] = i < names.n_servers && names.server_index[i] >= 0;
        names.server_index[i] = -1;
    }
    for (int l = 0; l < c->n_listeners; l++) {
        int i = slot_find(&names.n_listeners, STATS_MAX_LISTENERS, names.listener_index,
                          same_listener, c->listeners[l].name, &fresh);
        listener_state_bind(i, fresh);
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
    server_state_names_mark();
    for (int b = 0; b < c->n_backends; b++) {
        const struct config_backend *be = &c->backends[b];
        for (int s = 0; s < rt->pools[b].n; s++) {
            struct pool_member *m = &rt->pools[b].m[s];
            struct server_id id = {rt->st_backend[b], m->key};
            int i = slot_find(&names.n_servers, STATS_MAX_SERVERS, names.server_index, same_server,
                              &id, &fresh);
            m->st = server_state_bind(i, fresh || !was_live[i], be->name, m->key,
                                      m->dns ? m->name : NULL, m->weight, m->unresolved,
                                      be->health.mode != CHECK_OFF);
            names.server[i].backend = rt->st_backend[b];
            snprintf(names.server[i].key, sizeof(names.server[i].key), "%s", m->key);
            names.server_index[i] = (int32_t)(b * CONFIG_MAX_SERVERS + s);
            rt->st_server[b][s] = (uint16_t)i;
        }
    }
    server_state_names_sweep();
    pthread_mutex_unlock(&names_lock);
}

void registry_read(struct registry_names *out)
{
    pthread_mutex_lock(&names_lock);
    memcpy(out, &names, sizeof(*out));
    pthread_mutex_unlock(&names_lock);
}
