/* Servers' and listeners' state by slot: what operators set, and health. */
#include "server_state.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *const server_admin_name[3] = {"ready", "drain", "maint"};

static struct server_state servers[CONFIG_MAX_SERVERS_TOTAL];
static struct listener_state listeners[2 * CONFIG_MAX_LISTENERS];

/* Names an operator set to drain or maint: their addresses, later ones
 * too, take it. */
static struct name_state {
    char backend[CONFIG_NAME_MAX];
    char name[CONFIG_HOST_MAX];
    int admin; /* enum server_admin, never SERVER_READY */
    int seen;  /* the configuration being bound still has the name */
} names[SERVER_STATE_NAMES];
static int n_names;

static struct name_state *name_find(const char *backend, const char *name)
{
    for (int i = 0; i < n_names; i++)
        if (strcmp(names[i].backend, backend) == 0 && strcmp(names[i].name, name) == 0)
            return &names[i];
    return NULL;
}

int server_state_name_set(const char *backend, const char *name, enum server_admin admin)
{
    struct name_state *ns = name_find(backend, name);

    if (admin == SERVER_READY) {
        if (ns)
            *ns = names[--n_names];
        return 0;
    }
    if (!ns && n_names == SERVER_STATE_NAMES)
        return -ENOSPC;
    if (!ns) {
        ns = &names[n_names++];
        snprintf(ns->backend, sizeof(ns->backend), "%s", backend);
        snprintf(ns->name, sizeof(ns->name), "%s", name);
    }
    ns->admin = (int)admin;
    ns->seen = 1;
    return 0;
}

void server_state_names_mark(void)
{
    for (int i = 0; i < n_names; i++)
        names[i].seen = 0;
}

void server_state_names_sweep(void)
{
    for (int i = 0; i < n_names;)
        if (!names[i].seen)
            names[i] = names[--n_names];
        else
            i++;
}

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
                                       const char *dns_name, uint32_t weight, int unresolved,
                                       int checked)
{
    struct server_state *st = &servers[slot];
    struct name_state *ns = dns_name ? name_find(backend, dns_name) : NULL;

    if (ns)
        ns->seen = 1;
    if (fresh) {
        server_state_init(st, weight, unresolved, checked);
        if (ns)
            atomic_store(&st->admin, ns->admin);
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
