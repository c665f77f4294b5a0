/* SNI routes: exact host names and "*.suffix" wildcards, each to a backend,
 * in a hash table: a lookup costs one probe per label of the name, however
 * many routes there are. Pure: no I/O; the table is allocated once, when
 * it is built. */
#ifndef RINGRELAY_ROUTE_H
#define RINGRELAY_ROUTE_H

#include <stddef.h>
#include <stdint.h>

/* Checks a route's name as written: a host name (letters, digits, '-',
 * '_' and '.', no empty label) or "*." and one. Returns 0 for a name, 1
 * for a wildcard, -EINVAL otherwise. */
int route_name_check(const char *s, size_t n);

struct route_slot {
    const char *key; /* the name, or a wildcard's ".suffix"; NULL: empty */
    uint64_t hash;
    uint16_t len;
    int backend;
};

struct route_table {
    struct route_slot *slots; /* mask + 1 of them, at most half full */
    uint32_t mask;
    int n;
};

/* Makes an empty table with room for n routes. Returns 0 or -ENOMEM. */
int route_table_init(struct route_table *t, int n);
void route_table_free(struct route_table *t);

/* Adds name (checked with route_name_check(); it must outlive t) to
 * backend. Returns 0, -EEXIST if that name (in any case) is there, or
 * -ENOSPC past the n routes init made room for. */
int route_table_add(struct route_table *t, const char *name, int backend);

/* The backend for a ClientHello's server name: an exact match (case does
 * not matter), else the longest matching wildcard, else -1. */
int route_table_pick(const struct route_table *t, const uint8_t *sni, size_t len);

#endif
