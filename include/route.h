/* SNI routes: exact host names and "*.suffix" wildcards, each to a backend.
 * Pure: no I/O, no allocation. */
#ifndef RINGRELAY_ROUTE_H
#define RINGRELAY_ROUTE_H

#include "addr.h"
#include "clienthello.h"

#include <stddef.h>
#include <stdint.h>

struct route {
    char name[CLIENTHELLO_SNI_MAX + 1]; /* lower case; for a wildcard, the ".suffix" */
    size_t len;
    int wildcard;
    union sockaddr_inet backend;
};

/* Parses "NAME=ADDR:PORT" (NAME a host name or "*.suffix"). Returns 0 or
 * -EINVAL with *what naming the part that is wrong ("name" or "address"). */
int route_parse(const char *s, struct route *r, const char **what);

/* The backend for a ClientHello's server name: an exact match (case does
 * not matter), else the longest matching wildcard, else NULL. */
const struct route *route_pick(const struct route *routes, int n, const uint8_t *sni,
                               size_t len);

#endif
