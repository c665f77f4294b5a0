/* Counter blocks, one per worker, summed on read; and the names of the
 * end reasons and connect failures they count. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct end_reason stats_end[END_KINDS] = {
    [END_NONE] = {.name = "none", .what = "not ended yet (never in the access log)"},
    [END_CLIENT_CLOSED] = {.name = "client_closed",
                           .what =
                               "the client finished first (FIN), or closed before sending a byte",
                           .normal = 1},
    [END_BACKEND_CLOSED] = {.name = "backend_closed",
                            .what = "the server finished first (FIN)",
                            .normal = 1},
    [END_CLIENT_RESET] = {.name = "client_reset",
                          .what = "the client reset the connection, or a read or write on its side "
                                  "failed; the server side was reset too"},
    [END_BACKEND_RESET] = {.name = "backend_reset",
                           .what =
                               "the server reset the connection, or a read or write on its side "
                               "failed; the client was reset too (before the server's first byte: "
                               "see the diagnosis of a backend that refuses the PROXY header)"},
    [END_CONNECT_FAILED] = {.name = "connect_failed",
                            .what = "the connect to the server failed (refused, unreachable) and "
                                    "no other server could be tried"},
    [END_CONNECT_TIMEOUT] = {.name = "connect_timeout",
                             .what = "the connect to the server took longer than connect_timeout "
                                     "and no other server could be tried"},
    [END_NO_SERVER] =
        {.name = "no_server",
         .what = "no server of the backend could take it: every one down, full or tried already"},
    [END_IDLE_TIMEOUT] =
        {.name = "idle_timeout",
         .what = "nothing moved for idle_timeout (30 s at most once one side has finished)"},
    [END_HEADER_TIMEOUT] =
        {.name = "header_timeout",
         .what = "a trusted source sent no whole PROXY header within header_timeout"},
    [END_BAD_HEADER] = {.name = "bad_header",
                        .what = "a trusted source sent something that is not a valid PROXY header"},
    [END_UNTRUSTED_HEADER] = {.name = "untrusted_header",
                              .what =
                                  "a client that is not a trusted source sent a PROXY header (a "
                                  "forged address, or a proxy missing from trusted_sources)"},
    [END_PEEK_TIMEOUT] = {.name = "peek_timeout",
                          .what = "no whole TLS ClientHello within peek_timeout on a listener that "
                                  "reads it (routes, or the authority and alpn TLVs)"},
    [END_REFUSED_LIMIT] = {.name = "refused_limit",
                           .what = "refused at once: max_connections were open"},
    [END_SOURCE_LIMIT] = {.name = "source_limit",
                          .what =
                              "refused at once: its address had max_connections_per_source open"},
    [END_STOPPED] = {.name = "stopped",
                     .what = "reset when the relay stopped: a drain ran out, or SIGINT"},
    [END_LOCAL_ERROR] = {.name = "local_error",
                         .what = "the relay could not go on: out of descriptors or memory for it, "
                                 "or no descriptor for its backend socket within connect_timeout"},
    [END_HANDSHAKE_CLOSED] = {.name = "handshake_closed",
                              .what = "the client sent its FIN with its PROXY header or "
                                      "ClientHello incomplete: ended at once, not at the timeout"},
    [END_DENIED] = {.name = "denied",
                    .what = "reset at once: its address is in the listener's deny list, or "
                            "the listener has an allow list without it"},
    [END_RATE_LIMITED] = {.name = "rate_limited",
                          .what = "reset at once: its address opened "
                                  "max_connection_rate_per_source connections this second"},
    [END_LISTENER_OFF] = {.name = "listener_disabled",
                          .what = "reset at once: an operator disabled the listener "
                                  "(disable listener)"},
    [END_SERVER_SHUTDOWN] = {.name = "server_shutdown",
                             .what = "reset by an operator: shutdown sessions server"},
};

const char *const stats_fail_name[FAIL_KINDS] = {
    [FAIL_REFUSED] = "refused", [FAIL_TIMEOUT] = "timeout", [FAIL_UNREACHABLE] = "unreachable",
    [FAIL_RESET] = "reset",     [FAIL_OTHER] = "other",
};

#define BLOCK_SIZE ((sizeof(struct stats_block) + 63) & ~(size_t)63)

static _Atomic(struct stats_block *) blocks[STATS_MAX_WORKERS];

struct stats_block *stats_block_new(int id)
{
    struct stats_block *b;

    if (id < 0 || id >= STATS_MAX_WORKERS || !(b = aligned_alloc(64, BLOCK_SIZE)))
        return NULL;
    memset(b, 0, BLOCK_SIZE);
    atomic_store(&blocks[id], b);
    return b;
}

void stats_block_free(int id)
{
    if (id >= 0 && id < STATS_MAX_WORKERS)
        free(atomic_exchange(&blocks[id], NULL));
}

void stats_sum(struct stats_block *out)
{
    _Atomic uint64_t *dst = (_Atomic uint64_t *)out;
    const size_t words = sizeof(*out) / sizeof(uint64_t);

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < STATS_MAX_WORKERS; i++) {
        const _Atomic uint64_t *src = (const _Atomic uint64_t *)atomic_load(&blocks[i]);
        for (size_t k = 0; src && k < words; k++)
            atomic_store_explicit(&dst[k], stat_get(&dst[k]) + stat_get(&src[k]),
                                  memory_order_relaxed);
    }
}

int stats_worker_read(int id, struct stats_worker *out)
{
    const struct stats_block *b =
        id >= 0 && id < STATS_MAX_WORKERS ? atomic_load(&blocks[id]) : NULL;
    _Atomic uint64_t *dst = (_Atomic uint64_t *)out;
    const _Atomic uint64_t *src;

    if (!b)
        return -1;
    src = (const _Atomic uint64_t *)&b->w;
    for (size_t k = 0; k < sizeof(*out) / sizeof(uint64_t); k++)
        atomic_store_explicit(&dst[k], stat_get(&src[k]), memory_order_relaxed);
    return 0;
}
