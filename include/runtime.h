/* What the workers run from: a checked configuration plus what is derived
 * from it once (server pools, socket addresses, SNI route tables). Built
 * before the workers start; read-only after, but for the pools' atomics. */
#ifndef RINGRELAY_RUNTIME_H
#define RINGRELAY_RUNTIME_H

#include "config.h"
#include "pool.h"
#include "route.h"

#include <stdatomic.h>
#include <sys/un.h>

/* Listening sockets per worker: every bind of every listener. */
#define RUNTIME_MAX_BINDS 64

struct runtime {
    atomic_int refs; /* main's hold on the current one, and each worker generation's */
    struct config cfg;
    /* The connection budget in effect: max_connections fitted to the
     * open-file limit at start, kept by every reload. */
    uint32_t max_connections;
    uint32_t pipes_per_worker; /* splice pipes each worker may make; fitted likewise */
    uint32_t check_inflight;   /* health probes open at once: descriptors held for them */
    struct pool pools[CONFIG_MAX_BACKENDS];
    struct sockaddr_un *unix_addr[CONFIG_MAX_BACKENDS]; /* per server; NULL: no unix ones */
    struct route_table routes[CONFIG_MAX_LISTENERS];    /* by server name, to a backend */
    uint32_t hdr_cap[CONFIG_MAX_BACKENDS];              /* largest outbound header with its TLVs */
    int any_tlv_pass;                                   /* some backend copies inbound TLVs */
    /* Counter slots (registry_assign): by listener, backend, and server. */
    uint16_t st_listener[CONFIG_MAX_LISTENERS];
    uint16_t st_backend[CONFIG_MAX_BACKENDS];
    uint16_t *st_server[CONFIG_MAX_BACKENDS]; /* per server */
};

/* Derives pools, addresses and route tables from rt->cfg. Returns 0, or
 * -errno with err filled. */
int runtime_build(struct runtime *rt, char *err, size_t errlen);
void runtime_free(struct runtime *rt);

/* Takes a reference; the last runtime_put() frees rt. */
void runtime_get(struct runtime *rt);
void runtime_put(struct runtime *rt);

/* The address to connect to for server s of backend b. */
const struct sockaddr *runtime_server_addr(const struct runtime *rt, int b, int s);

#endif
