/* Counters. Every worker owns one block and is its only writer (a relaxed
 * load and store, which compile to a plain add); readers sum the blocks.
 * No lock and no shared cache line on the data path. Listeners, backends
 * and servers are counted in slots the registry (registry.h) gives them
 * by name, so counts survive a reload that keeps the name. */
#ifndef RINGRELAY_STATS_H
#define RINGRELAY_STATS_H

#include "runtime.h"

#include <stdatomic.h>
#include <stdint.h>

#define STATS_MAX_WORKERS 256
#define STATS_MAX_LISTENERS (2 * CONFIG_MAX_LISTENERS)
#define STATS_MAX_BACKENDS (2 * CONFIG_MAX_BACKENDS)
#define STATS_MAX_SERVERS CONFIG_MAX_SERVERS_TOTAL
/* Histogram bucket i counts values <= 2^(i + STATS_BUCKET_SHIFT) us; the
 * last one counts the rest. */
#define STATS_BUCKETS 28
#define STATS_BUCKET_SHIFT 4

/* Why a connection ended: the access log's reason code, and a counter per
 * listener. stats_end[] in stats.c names and explains each; the README's
 * and the man page's lists are made from it (make docs). */
enum conn_end {
    END_NONE,
    END_CLIENT_CLOSED,
    END_BACKEND_CLOSED,
    END_CLIENT_RESET,
    END_BACKEND_RESET,
    END_CONNECT_FAILED,
    END_CONNECT_TIMEOUT,
    END_NO_SERVER,
    END_IDLE_TIMEOUT,
    END_HEADER_TIMEOUT,
    END_BAD_HEADER,
    END_UNTRUSTED_HEADER,
    END_PEEK_TIMEOUT,
    END_REFUSED_LIMIT,
    END_SOURCE_LIMIT,
    END_STOPPED,
    END_LOCAL_ERROR,
    END_HANDSHAKE_CLOSED, /* FIN before its PROXY header or ClientHello was whole */
    END_DENIED,           /* by the listener's allow and deny lists */
    END_RATE_LIMITED,     /* by max_connection_rate_per_source */
    END_LISTENER_OFF,     /* disable listener */
    END_SERVER_SHUTDOWN,  /* shutdown sessions server */
    END_KINDS
};

struct end_reason {
    const char *name; /* as the access log, the JSON and Prometheus spell it */
    const char *what; /* one sentence for the README and the man page */
    int normal;       /* an ordinary end: access_log mode errors skips it */
};

extern const struct end_reason stats_end[END_KINDS];

/* Connect failures, by cause. */
enum connect_fail {
    FAIL_REFUSED,
    FAIL_TIMEOUT,
    FAIL_UNREACHABLE,
    FAIL_RESET,
    FAIL_OTHER,
    FAIL_KINDS
};

extern const char *const stats_fail_name[FAIL_KINDS];

struct stats_hist {
    _Atomic uint64_t bucket[STATS_BUCKETS];
    _Atomic uint64_t sum_us;
};

struct stats_listener {
    _Atomic uint64_t accepted, closed;
    _Atomic uint64_t refused;        /* by max_connections */
    _Atomic uint64_t refused_source; /* by max_connections_per_source */
    _Atomic uint64_t header_in, header_bad, header_timeouts, header_untrusted;
    _Atomic uint64_t peek_timeouts, routed;
    _Atomic uint64_t ends[END_KINDS];
};

struct stats_backend {
    _Atomic uint64_t conns, closed; /* connections given to it */
    _Atomic uint64_t no_server;     /* every server down, full or tried */
    _Atomic uint64_t retries;
    _Atomic uint64_t bytes[2]; /* from clients, from servers */
    struct stats_hist connect, first_byte, duration;
};

struct stats_server {
    _Atomic uint64_t conns, closed; /* connections established */
    _Atomic uint64_t fails[FAIL_KINDS];
    _Atomic uint64_t no_proxy; /* ended or answered as if it took no PROXY header */
    _Atomic uint64_t bytes[2];
};

struct stats_worker {
    _Atomic uint64_t active;
    _Atomic uint64_t pipes_in_use, pipes_exhausted;
    _Atomic uint64_t log_dropped;   /* access log records dropped, ring full */
    _Atomic uint64_t accept_errors; /* accept failed (no descriptor or memory): paused */
    _Atomic uint64_t heartbeat;     /* ticks run: proof of life for the watchdog */
};

/* One worker's counters: nothing but 64-bit atomics, so blocks can be
 * summed word by word. */
struct stats_block {
    struct stats_worker w;
    struct stats_listener l[STATS_MAX_LISTENERS];
    struct stats_backend b[STATS_MAX_BACKENDS];
    struct stats_server s[STATS_MAX_SERVERS];
};

static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void stat_inc(_Atomic uint64_t *c)
{
    stat_add(c, 1);
}

static inline void stat_dec(_Atomic uint64_t *c)
{
    stat_add(c, UINT64_MAX);
}

static inline uint64_t stat_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* The bucket for us microseconds. */
static inline int stats_bucket(uint64_t us)
{
    int b = us <= 1 ? 0 : 64 - __builtin_clzll(us - 1) - STATS_BUCKET_SHIFT;

    return b < 0 ? 0 : b >= STATS_BUCKETS ? STATS_BUCKETS - 1 : b;
}

static inline void stats_hist_add(struct stats_hist *h, uint64_t us)
{
    stat_inc(&h->bucket[stats_bucket(us)]);
    stat_add(&h->sum_us, us);
}

/* A zeroed, cache-line-aligned block for worker id, registered for
 * stats_sum(). NULL when out of memory. */
struct stats_block *stats_block_new(int id);
void stats_block_free(int id);

/* Sums every registered block into out (zeroed first). Any thread. */
void stats_sum(struct stats_block *out);

/* Reads worker id's block (NULL if none) into out. */
int stats_worker_read(int id, struct stats_worker *out);

#endif
