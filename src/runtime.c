/* The runtime: a configuration and what the data path derives from it. */
#include "runtime.h"

#include "options.h"

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

/* A backend as the command line gives it: its settings from the flags. */
static void backend_from_options(struct config_backend *be, const struct options *o,
                                 const char *name)
{
    memset(be, 0, sizeof(*be));
    snprintf(be->name, sizeof(be->name), "%s", name);
    be->proxy_protocol = o->proxy;
    be->tlvs = o->tlvs;
    memcpy(be->tlv_pass, o->tlv_pass, sizeof(be->tlv_pass));
    be->n_tlv_pass = o->n_tlv_pass;
    be->balance = BALANCE_ROUND_ROBIN;
    be->connect_timeout_ms = o->connect_timeout_ms;
    be->idle_timeout_ms = o->idle_timeout_ms;
    be->retries = 0;
    be->health.mode = CHECK_OFF;
    be->n_servers = 1;
    be->servers[0].weight = 1;
}

/* The process-wide flags in mask (OPT_* bits) over c. */
static void runtime_apply_globals(struct config *c, const struct options *o, uint64_t mask)
{
    if (mask & OPT_STATS_SOCKET)
        snprintf(c->stats_socket, sizeof(c->stats_socket), "%s", o->stats_socket);
    if (mask & OPT_DRAIN_TIMEOUT)
        c->drain_timeout_ms = o->drain_timeout_ms;
    if (mask & OPT_ACCESS_LOG)
        snprintf(c->access_log.path, sizeof(c->access_log.path), "%s", o->access_log);
    if (mask & OPT_ACCESS_LOG_MODE)
        c->access_log.mode = (enum access_log_mode)o->access_log_mode;
    if (mask & OPT_ACCESS_LOG_FORMAT)
        c->access_log.format = (enum access_log_format)o->access_log_format;
    if (mask & OPT_USER)
        snprintf(c->user, sizeof(c->user), "%s", o->user);
    if (mask & OPT_GROUP)
        snprintf(c->group, sizeof(c->group), "%s", o->group);
}

void runtime_config_from_options(struct config *c, const struct options *o)
{
    struct config_listener *l = &c->listeners[0];

    memset(c, 0, sizeof(*c));
    c->workers = o->workers;
    c->io = o->io;
    c->splice = o->splice;
    c->max_connections = o->max_connections;
    c->log_level = o->log_level;
    runtime_apply_globals(c, o, ~0ULL);
    c->n_listeners = 1;
    snprintf(l->name, sizeof(l->name), "cli");
    memcpy(l->bind, o->listen, sizeof(l->bind[0]) * (size_t)o->n_listen);
    l->n_bind = o->n_listen;
    l->proxy_protocol_in = o->proxy_in;
    memcpy(l->trusted, o->trusted, sizeof(l->trusted));
    l->n_trusted = o->n_trusted;
    l->header_timeout_ms = o->header_timeout_ms;
    l->header_max_size = o->header_max;
    l->peek_timeout_ms = o->peek_timeout_ms;
    l->max_per_source = o->max_per_source;
    backend_from_options(&c->backends[0], o, "backend");
    if (o->backend_unix.sun_family == AF_UNIX) {
        c->backends[0].servers[0].is_unix = 1;
        snprintf(c->backends[0].servers[0].path, CONFIG_PATH_MAX, "%s", o->backend_unix.sun_path);
    } else {
        c->backends[0].servers[0].inet = o->backend;
    }
    c->n_backends = 1 + o->n_routes;
    for (int r = 0; r < o->n_routes; r++) {
        struct config_route *cr = &l->routes[r];
        char name[CONFIG_NAME_MAX];
        snprintf(name, sizeof(name), "route%d", r + 1);
        backend_from_options(&c->backends[1 + r], o, name);
        c->backends[1 + r].servers[0].inet = o->routes[r].backend;
        snprintf(cr->sni, sizeof(cr->sni), "%s%s", o->routes[r].wildcard ? "*" : "",
                 o->routes[r].name);
        snprintf(cr->backend, sizeof(cr->backend), "%s", name);
        cr->backend_index = 1 + r;
    }
    l->n_routes = o->n_routes;
    snprintf(l->default_backend, sizeof(l->default_backend), "backend");
    l->default_index = 0;
}

int runtime_apply_options(struct config *c, const struct options *o, char *err, size_t errlen)
{
    if (o->given & (OPT_LISTEN | OPT_BACKEND | OPT_ROUTE)) {
        snprintf(err, errlen, "--listen, --backend and --route describe what the file's "
                 "listeners and backends do; give one or the other, not both");
        return -EINVAL;
    }
    if (o->given & OPT_WORKERS)
        c->workers = o->workers;
    if (o->given & OPT_IO)
        c->io = o->io;
    if (o->given & OPT_SPLICE)
        c->splice = o->splice;
    if (o->given & OPT_LOG_LEVEL)
        c->log_level = o->log_level;
    if (o->given & OPT_MAX_CONNECTIONS)
        c->max_connections = o->max_connections;
    runtime_apply_globals(c, o, o->given);
    for (int l = 0; l < c->n_listeners; l++) {
        struct config_listener *li = &c->listeners[l];
        if (o->given & OPT_PROXY_IN)
            li->proxy_protocol_in = o->proxy_in;
        if (o->given & OPT_TRUSTED) {
            memcpy(li->trusted, o->trusted, sizeof(li->trusted));
            li->n_trusted = o->n_trusted;
        }
        if (o->given & OPT_HEADER_TIMEOUT)
            li->header_timeout_ms = o->header_timeout_ms;
        if (o->given & OPT_HEADER_MAX)
            li->header_max_size = o->header_max;
        if (o->given & OPT_PEEK_TIMEOUT)
            li->peek_timeout_ms = o->peek_timeout_ms;
        if (o->given & OPT_MAX_PER_SOURCE)
            li->max_per_source = o->max_per_source;
        if (li->proxy_protocol_in != PROXY_IN_OFF && li->n_trusted == 0) {
            snprintf(err, errlen, "listener %s: proxy_protocol_in needs trusted_sources",
                     li->name);
            return -EINVAL;
        }
    }
    for (int b = 0; b < c->n_backends; b++) {
        struct config_backend *be = &c->backends[b];
        if (o->given & OPT_PROXY)
            be->proxy_protocol = o->proxy;
        if (o->given & OPT_CONNECT_TIMEOUT)
            be->connect_timeout_ms = o->connect_timeout_ms;
        if (o->given & OPT_IDLE_TIMEOUT)
            be->idle_timeout_ms = o->idle_timeout_ms;
        if (o->given & OPT_TLVS) {
            be->tlvs = o->tlvs;
            memcpy(be->tlv_pass, o->tlv_pass, sizeof(be->tlv_pass));
            be->n_tlv_pass = o->n_tlv_pass;
        }
        if ((be->tlvs || be->n_tlv_pass) && be->proxy_protocol != PROXY_V2) {
            snprintf(err, errlen, "backend %s: tlvs need proxy_protocol v2", be->name);
            return -EINVAL;
        }
    }
    return 0;
}
