/* The runtime: a configuration and what the data path derives from it. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for the TLVs ringrelay writes itself: AUTHORITY (a DNS name), ALPN
 * (one protocol name), UNIQUE_ID and CRC32C, each with its 3-byte head. */
#define TLV_OWN_ROOM ((3 + 253) + (3 + 255) + (3 + 64) + (3 + 4))

/* Listener l's routes in a table by server name. */
static int routes_build(struct runtime *rt, int l, char *err, size_t errlen)
{
    const struct config_listener *li = &rt->cfg.listeners[l];

    if (route_table_init(&rt->routes[l], li->n_routes) < 0) {
        snprintf(err, errlen, "listener %s: out of memory for its routes", li->name);
        return -ENOMEM;
    }
    for (int r = 0; r < li->n_routes; r++) {
        /* Names were checked, and duplicates refused, by config_load(). */
        if (route_table_add(&rt->routes[l], li->routes[r].sni, li->routes[r].backend_index) < 0) {
            snprintf(err, errlen, "listener %s: route '%s': cannot be added", li->name,
                     li->routes[r].sni);
            return -EINVAL;
        }
    }
    return 0;
}

/* Backend b's pool, its unix socket addresses, and its counter slots. */
static int backend_build(struct runtime *rt, int b, char *err, size_t errlen)
{
    const struct config_backend *be = &rt->cfg.backends[b];
    size_t n = be->n_servers ? (size_t)be->n_servers : 1;
    int any_unix = 0;

    for (int s = 0; s < be->n_servers; s++)
        any_unix |= be->servers[s].is_unix;
    rt->st_server[b] = calloc(n, sizeof(*rt->st_server[b]));
    rt->unix_addr[b] = any_unix ? calloc(n, sizeof(*rt->unix_addr[b])) : NULL;
    if (pool_build(&rt->pools[b], be) < 0 || !rt->st_server[b] || (any_unix && !rt->unix_addr[b])) {
        snprintf(err, errlen, "backend %s: out of memory for its pool", be->name);
        return -ENOMEM;
    }
    for (int s = 0; any_unix && s < be->n_servers; s++) {
        struct sockaddr_un *u = &rt->unix_addr[b][s];
        size_t len = strnlen(be->servers[s].path, sizeof(u->sun_path) - 1);
        u->sun_family = AF_UNIX;
        memcpy(u->sun_path, be->servers[s].path, len);
    }
    return 0;
}

int runtime_build(struct runtime *rt, char *err, size_t errlen)
{
    struct config *c = &rt->cfg;
    uint32_t inbound_max = 0; /* the largest inbound header, whose TLVs may be copied */
    int binds = 0;

    for (int l = 0; l < c->n_listeners; l++) {
        binds += c->listeners[l].n_bind;
        if (c->listeners[l].header_max_size > inbound_max)
            inbound_max = c->listeners[l].header_max_size;
        if (routes_build(rt, l, err, errlen) < 0)
            return -EINVAL;
    }
    if (binds > RUNTIME_MAX_BINDS) {
        snprintf(err, errlen, "%d bind addresses over all listeners; at most %d", binds,
                 RUNTIME_MAX_BINDS);
        return -EINVAL;
    }
    for (int b = 0; b < c->n_backends; b++) {
        const struct config_backend *be = &c->backends[b];
        if (backend_build(rt, b, err, errlen) < 0)
            return -ENOMEM;
        rt->hdr_cap[b] = PROXY_HDR_MAX + TLV_OWN_ROOM + (be->n_tlv_pass ? inbound_max : 0);
        rt->any_tlv_pass |= be->n_tlv_pass > 0;
    }
    return 0;
}

void runtime_free(struct runtime *rt)
{
    for (int l = 0; l < rt->cfg.n_listeners; l++)
        route_table_free(&rt->routes[l]);
    for (int b = 0; b < rt->cfg.n_backends; b++) {
        pool_free(&rt->pools[b]);
        free(rt->unix_addr[b]);
        free(rt->st_server[b]);
    }
    config_free(&rt->cfg);
}

void runtime_get(struct runtime *rt)
{
    atomic_fetch_add(&rt->refs, 1);
}

void runtime_put(struct runtime *rt)
{
    if (rt && atomic_fetch_sub(&rt->refs, 1) == 1) {
        runtime_free(rt);
        free(rt);
    }
}

const struct sockaddr *runtime_server_addr(const struct runtime *rt, int b, int s)
{
    const struct config_server *sv = &rt->cfg.backends[b].servers[s];

    return sv->is_unix ? (const struct sockaddr *)&rt->unix_addr[b][s] : &sv->inet.sa;
}
