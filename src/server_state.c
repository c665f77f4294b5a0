/* Servers' and listeners' state by slot: what operators set, and health. */
#include "server_state.h"

#include "config.h"
#include "log.h"

const char *const server_admin_name[3] = {"ready", "drain", "maint"};

static struct server_state servers[CONFIG_MAX_SERVERS_TOTAL];
static struct listener_state listeners[2 * CONFIG_MAX_LISTENERS];

void server_state_init(struct server_state *st, uint32_t weight, int unresolved, int checked)
{
    atomic_store(&st->admin, SERVER_READY);
    atomic_store(&st->weight, weight);
    st->weight_cfg = weight;
    st->weight_set = 0;
    atomic_store(&st->up, !unresolved);
    atomic_store(&st->proven, !checked && !unresolved);
    atomic_store(&st->fails, 0);
    st->checked = checked;
}

struct server_state *server_state_of(int slot)
{
    return &servers[slot];
}

struct listener_state *listener_state_of(int slot)
{
    return &listeners[slot];
}

/* Health as a new server's, unless checks ran before and run now. */
static void health_bind(struct server_state *st, int unresolved, int checked)
{
    if (!(st->checked && checked) || unresolved) {
        atomic_store(&st->up, !unresolved);
        atomic_store(&st->proven, !checked && !unresolved);
        atomic_store(&st->fails, 0);
    }
    st->checked = checked;
}

struct server_state *server_state_bind(int slot, int fresh, const char *backend, const char *key,
                                       uint32_t weight, int unresolved, int checked)
{
    struct server_state *st = &servers[slot];

    if (fresh) {
        server_state_init(st, weight, unresolved, checked);
        return st;
    }
    if (st->weight_cfg != weight && st->weight_set) {
        log_warn("backend %s: server %s: weight set to %u at runtime dropped: the configured "
                 "weight changed from %u to %u",
                 backend, key, atomic_load(&st->weight), st->weight_cfg, weight);
        st->weight_set = 0;
    }
    if (!st->weight_set)
        atomic_store(&st->weight, weight);
    st->weight_cfg = weight;
    health_bind(st, unresolved, checked);
    return st;
}

void listener_state_bind(int slot, int fresh)
{
    if (fresh)
        atomic_store(&listeners[slot].off, 0);
}

void server_state_changed(struct server_state *st)
{
    atomic_fetch_add_explicit(&st->changes, 1, memory_order_relaxed);
}
