/* Server selection: the smooth round-robin order, weights, limits, least
 * connections, and how many clients a consistent hash moves. */
#include "pool.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static struct config_backend be;
static struct config_server servers[8];
static struct pool pool;

/* A skip list of the given servers, as a connection that tried them has. */
static const struct pool_tried *tried(int s)
{
    static struct pool_tried t;

    t.n = 0;
    pool_tried_add(&t, s);
    return &t;
}

static void build(enum balance balance, const uint32_t *weights, int n)
{
    memset(&be, 0, sizeof(be));
    memset(servers, 0, sizeof(servers));
    be.servers = servers;
    be.balance = balance;
    be.n_servers = n;
    for (int i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.0.0.%d:8443", i + 1);
        cr_assert_eq(addr_parse(addr, &be.servers[i].inet), 0);
        be.servers[i].weight = weights ? weights[i] : 1;
    }
    pool_free(&pool);
    cr_assert_eq(pool_build(&pool, &be), 0);
}

static union sockaddr_inet client(unsigned i)
{
    union sockaddr_inet a;
    char s[48];

    snprintf(s, sizeof(s), "%u.%u.%u.%u:%u", 11 + (i >> 16) % 200, (i >> 8) & 255, i & 255,
             1 + i % 250, 1024 + i % 50000);
    cr_assert_eq(addr_parse(s, &a), 0, "%s", s);
    return a;
}

Test(pool, smooth_round_robin_order)
{
    static const uint32_t w[] = {5, 1, 1};
    struct pool_rr rr = {0};
    char got[16] = "";

    build(BALANCE_ROUND_ROBIN, w, 3);
    cr_assert_eq(pool_rr_init(&rr, &pool), 0);
    for (int k = 0; k < 14; k++)
        got[k] = (char)('a' + pool_pick(&pool, &rr, NULL, NULL));
    /* nginx's documented order for weights 5, 1, 1, twice over. */
    cr_assert_str_eq(got, "aabacaaaabacaa");
    pool_rr_fini(&rr);
}

Test(pool, round_robin_passes_over_down_full_and_tried)
{
    static const uint32_t w[] = {1, 1, 1};
    struct pool_rr rr = {0};
    int seen[3] = {0};

    build(BALANCE_ROUND_ROBIN, w, 3);
    cr_assert_eq(pool_rr_init(&rr, &pool), 0);
    atomic_store(&pool.m[1].st->up, 0);
    for (int k = 0; k < 100; k++)
        seen[pool_pick(&pool, &rr, NULL, NULL)]++;
    cr_assert_eq(seen[1], 0);
    cr_assert_eq(seen[0], 50);
    pool.m[0].max_conns = 3;
    atomic_store(&pool.m[0].active, 3);
    cr_assert_eq(pool_pick(&pool, &rr, NULL, NULL), 2, "a full server is passed over");
    cr_assert_eq(pool_pick(&pool, &rr, NULL, tried(2)), -1, "down, full, tried: none left");
    atomic_store(&pool.m[0].active, 2);
    cr_assert_eq(pool_pick(&pool, &rr, NULL, tried(2)), 0);
    pool_rr_fini(&rr);
}

Test(pool, least_conn_by_weight)
{
    static const uint32_t w[] = {1, 2, 1};
    struct pool_rr rr = {0};

    build(BALANCE_LEAST_CONN, w, 3);
    atomic_store(&pool.m[0].active, 4);
    atomic_store(&pool.m[1].active, 6); /* 3 per unit of weight */
    atomic_store(&pool.m[2].active, 5);
    cr_assert_eq(pool_pick(&pool, &rr, NULL, NULL), 1);
    cr_assert_eq(pool_pick(&pool, &rr, NULL, tried(1)), 0);
    atomic_store(&pool.m[0].active, 0);
    atomic_store(&pool.m[1].active, 0);
    atomic_store(&pool.m[2].active, 0);
    {
        int seen[3] = {0};
        for (int k = 0; k < 30; k++)
            seen[pool_pick(&pool, &rr, NULL, NULL)]++;
        cr_assert(seen[0] && seen[1] && seen[2], "ties rotate: %d %d %d", seen[0], seen[1],
                  seen[2]);
    }
}

#define KEYS 20000

/* Which server each of KEYS clients gets. */
static void assign(int *out)
{
    for (unsigned i = 0; i < KEYS; i++) {
        union sockaddr_inet a = client(i);
        out[i] = pool_pick(&pool, NULL, &a.sa, NULL);
    }
}

Test(pool, hash_is_sticky_and_ignores_the_port)
{
    union sockaddr_inet a, b, m;

    build(BALANCE_CLIENT_IP_HASH, NULL, 5);
    cr_assert_eq(addr_parse("203.0.113.9:1000", &a), 0);
    cr_assert_eq(addr_parse("203.0.113.9:2000", &b), 0);
    cr_assert_eq(addr_parse("[::ffff:203.0.113.9]:3000", &m), 0);
    cr_assert_eq(pool_pick(&pool, NULL, &a.sa, NULL), pool_pick(&pool, NULL, &b.sa, NULL));
    cr_assert_eq(pool_pick(&pool, NULL, &a.sa, NULL), pool_pick(&pool, NULL, &m.sa, NULL));
}

Test(pool, hash_moves_about_one_in_n_when_a_server_goes)
{
    static int before[KEYS], after[KEYS];
    int n = 5, moved = 0, counts[5] = {0};

    build(BALANCE_CLIENT_IP_HASH, NULL, n);
    assign(before);
    for (int i = 0; i < KEYS; i++)
        counts[before[i]]++;
    for (int s = 0; s < n; s++)
        cr_assert(counts[s] > KEYS / n * 7 / 10 && counts[s] < KEYS / n * 13 / 10,
                  "server %d has %d of %d keys: the ring is lopsided", s, counts[s], KEYS);
    /* Down (health checks): only its own clients move. */
    atomic_store(&pool.m[2].st->up, 0);
    assign(after);
    for (int i = 0; i < KEYS; i++) {
        cr_assert(before[i] == 2 || after[i] == before[i], "key %d moved off a live server", i);
        moved += after[i] != before[i];
    }
    cr_assert_eq(moved, counts[2]);
    /* Removed from the configuration (a reload): the same, by the ring. */
    be.servers[2] = be.servers[4];
    be.n_servers = 4;
    pool_free(&pool);
    cr_assert_eq(pool_build(&pool, &be), 0);
    moved = 0;
    for (unsigned i = 0; i < KEYS; i++) {
        union sockaddr_inet a = client(i);
        int s = pool_pick(&pool, NULL, &a.sa, NULL);
        int old = before[i] == 4 ? 2 : before[i]; /* server 4 now sits at index 2 */
        moved += before[i] == 2 || s != old;
    }
    cr_assert(moved > KEYS / n * 7 / 10 && moved < KEYS / n * 13 / 10,
              "%d of %d keys moved when 1 of %d servers went (about 1/%d expected)", moved, KEYS, n,
              n);
    cr_log_info("hash: %d of %d keys (%.3f) moved when 1 of %d servers was removed", moved, KEYS,
                (double)moved / KEYS, n);
}

/* A thousand servers, each tried once by a connection that retries the
 * most it may: never picked again, whatever the balance. */
Test(pool, a_thousand_servers_and_the_tried_ones_passed_over)
{
    static struct config_server many[1000];
    struct pool_rr rr = {0};
    struct pool_tried t = {.n = 0};
    int first;

    memset(&be, 0, sizeof(be));
    be.servers = many;
    be.n_servers = 1000;
    for (int i = 0; i < 1000; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.0.%d.%d:8443", i / 250, i % 250 + 1);
        cr_assert_eq(addr_parse(addr, &many[i].inet), 0);
        many[i].weight = 1;
    }
    for (int b = 0; b < 3; b++) {
        be.balance = (enum balance)b;
        pool_free(&pool);
        cr_assert_eq(pool_build(&pool, &be), 0);
        cr_assert_eq(pool_rr_init(&rr, &pool), 0);
        t.n = 0;
        first = pool_pick(&pool, &rr, NULL, &t);
        cr_assert(first >= 0 && first < 1000);
        for (int k = 0; k < CONFIG_MAX_RETRIES + 1; k++) {
            int s = pool_pick(&pool, &rr, NULL, &t);
            for (int j = 0; j < t.n; j++)
                cr_assert_neq(s, t.s[j], "balance %d: server %d picked again", b, s);
            pool_tried_add(&t, s);
        }
        pool_rr_fini(&rr);
    }
}

Test(pool, drain_maint_and_weight_set_at_runtime)
{
    struct pool_rr rr;
    int got[3] = {0};

    build(BALANCE_ROUND_ROBIN, NULL, 3);
    cr_assert_eq(pool_rr_init(&rr, &pool), 0);
    atomic_store(&pool.m[0].st->admin, SERVER_DRAIN);
    atomic_store(&pool.m[1].st->weight, 3);
    for (int i = 0; i < 8; i++)
        got[pool_pick(&pool, &rr, NULL, NULL)]++;
    cr_assert(got[0] == 0 && got[1] == 6 && got[2] == 2, "%d %d %d", got[0], got[1], got[2]);
    atomic_store(&pool.m[1].st->admin, SERVER_MAINT);
    atomic_store(&pool.m[2].st->weight, 0);
    cr_assert_eq(pool_pick(&pool, &rr, NULL, NULL), -1, "drain, maint and weight 0: none");
    pool_rr_fini(&rr);
}
