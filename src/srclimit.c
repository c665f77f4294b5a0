/* The per-source count: see srclimit.h. */
#include "srclimit.h"

#include "addr.h"
#include "pool.h"

#include <stdatomic.h>

static _Atomic uint32_t rows[SRCLIMIT_ROWS][SRCLIMIT_BUCKETS];
/* The rate's cells: the second they count in (high half) and how many
 * connections so far in it (low half). */
static _Atomic uint64_t rate_rows[SRCLIMIT_ROWS][SRCLIMIT_BUCKETS];

/* Row r's bucket for key: the key mixed again per row (splitmix64's
 * finalizer), so that the rows' cells are independent. */
static uint32_t bucket(uint64_t key, int r)
{
    uint64_t x = key + (uint64_t)(r + 1) * 0x9e3779b97f4a7c15ULL;

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (uint32_t)(x & (SRCLIMIT_BUCKETS - 1));
}

static _Atomic uint32_t *cell(uint64_t key, int r)
{
    return &rows[r][bucket(key, r)];
}

uint64_t srclimit_key(const struct sockaddr *sa)
{
    const uint8_t *p;
    size_t n = addr_bytes(sa, &p);

    return pool_hash(p, n);
}

int srclimit_take(uint64_t key, uint32_t limit)
{
    uint32_t least = UINT32_MAX;

    for (int r = 0; r < SRCLIMIT_ROWS; r++) {
        uint32_t was = atomic_fetch_add_explicit(cell(key, r), 1, memory_order_relaxed);
        least = was < least ? was : least;
    }
    if (least < limit)
        return 0;
    srclimit_put(key);
    return -1;
}

void srclimit_put(uint64_t key)
{
    for (int r = 0; r < SRCLIMIT_ROWS; r++)
        atomic_fetch_sub_explicit(cell(key, r), 1, memory_order_relaxed);
}

int srclimit_rate(uint64_t key, uint32_t limit, uint32_t second)
{
    uint32_t least = UINT32_MAX;

    for (int r = 0; r < SRCLIMIT_ROWS; r++) {
        _Atomic uint64_t *c = &rate_rows[r][bucket(key, r)];
        uint64_t was = atomic_load_explicit(c, memory_order_relaxed), now;
        do { /* a cell still on an earlier second starts over (one on a later one:
              * another worker read the clock a moment later) */
            now = (uint32_t)(was >> 32) >= second ? was + 1 : (uint64_t)second << 32 | 1;
        } while (!atomic_compare_exchange_weak_explicit(c, &was, now, memory_order_relaxed,
                                                        memory_order_relaxed));
        least = (uint32_t)now < least ? (uint32_t)now : least;
    }
    return least <= limit ? 0 : -1;
}
