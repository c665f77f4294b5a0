/* The runtime: a configuration and what the data path derives from it. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for the TLVs ringrelay writes itself: AUTHORITY (a DNS name), ALPN
 * (one protocol name), UNIQUE_ID and CRC32C, each with its 3-byte head. */
#define TLV_OWN_ROOM ((3 + 253) + (3 + 255) + (3 + 64) + (3 + 4))

int runtime_build(struct runtime *rt, char *err, size_t errlen)
{
    struct config *c = &rt->cfg;
    uint32_t inbound_max = 0; /* the largest inbound header, whose TLVs may be copied */
    int binds = 0;

    for (int l = 0; l < c->n_listeners; l++) {
        binds += c->listeners[l].n_bind;
        if (c->listeners[l].header_max_size > inbound_max)
            inbound_max = c->listeners[l].header_max_size;
        for (int r = 0; r < c->listeners[l].n_routes; r++) {
            const char *what;
            char spec[CLIENTHELLO_SNI_MAX + 32];
            snprintf(spec, sizeof(spec), "%s=127.0.0.1:1", c->listeners[l].routes[r].sni);
            if (route_parse(spec, &rt->routes[l][r], &what) < 0) {
                snprintf(err, errlen, "listener %s: route '%s': bad name", c->listeners[l].name,
                         c->listeners[l].routes[r].sni);
                return -EINVAL;
            }
        }
    }
    if (binds > RUNTIME_MAX_BINDS) {
        snprintf(err, errlen, "%d bind addresses over all listeners; at most %d", binds,
                 RUNTIME_MAX_BINDS);
        return -EINVAL;
    }
    for (int b = 0; b < c->n_backends; b++) {
        const struct config_backend *be = &c->backends[b];
        if (pool_build(&rt->pools[b], be) < 0) {
            snprintf(err, errlen, "backend %s: out of memory for its pool", be->name);
            return -ENOMEM;
        }
        for (int s = 0; s < be->n_servers; s++) {
            struct sockaddr_un *u = &rt->unix_addr[b][s];
            size_t n = strnlen(be->servers[s].path, sizeof(u->sun_path) - 1);
            memset(u, 0, sizeof(*u));
            u->sun_family = AF_UNIX;
            memcpy(u->sun_path, be->servers[s].path, n);
        }
        rt->hdr_cap[b] = PROXY_HDR_MAX + TLV_OWN_ROOM + (be->n_tlv_pass ? inbound_max : 0);
        rt->any_tlv_pass |= be->n_tlv_pass > 0;
    }
    return 0;
}

void runtime_free(struct runtime *rt)
{
    for (int b = 0; b < rt->cfg.n_backends; b++)
        pool_free(&rt->pools[b]);
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
