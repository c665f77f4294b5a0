/* SNI routes: names checked, then picked from the hash table (exact,
 * longest wildcard, case), and the cost of a lookup among 10,000 routes. */
#include "route.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const table[] = {
    "api.example.com",
    "*.example.com",
    "*.eu.example.com",
    "Example.ORG",
};

static struct route_table routes;

static void load(void)
{
    cr_assert_eq(route_table_init(&routes, 4), 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_geq(route_name_check(table[i], strlen(table[i])), 0, "%s", table[i]);
        cr_assert_eq(route_table_add(&routes, table[i], i), 0, "%s", table[i]);
    }
}

/* The route a name takes, as written in the table, or "(default)". */
static const char *pick(const char *sni)
{
    int b = route_table_pick(&routes, (const uint8_t *)sni, strlen(sni));
    return b >= 0 ? table[b] : "(default)";
}

Test(route, pick)
{
    load();
    cr_assert_str_eq(pick("api.example.com"), "api.example.com");
    cr_assert_str_eq(pick("API.Example.Com"), "api.example.com");
    cr_assert_str_eq(pick("www.example.com"), "*.example.com");
    cr_assert_str_eq(pick("a.b.example.com"), "*.example.com");
    cr_assert_str_eq(pick("x.eu.example.com"), "*.eu.example.com");
    cr_assert_str_eq(pick("a.x.eu.example.com"), "*.eu.example.com", "the longest wildcard");
    cr_assert_str_eq(pick("example.com"), "(default)");
    cr_assert_str_eq(pick(".example.com"), "(default)");
    cr_assert_str_eq(pick("badexample.com"), "(default)");
    cr_assert_str_eq(pick("example.org"), "Example.ORG");
    cr_assert_str_eq(pick("www.example.org"), "(default)");
    cr_assert_eq(route_table_pick(&routes, NULL, 0), -1);
    cr_assert_eq(route_table_add(&routes, "API.EXAMPLE.com", 9), -EEXIST);
    cr_assert_eq(route_table_add(&routes, "*.EU.example.com", 9), -EEXIST);
    route_table_free(&routes);
}

Test(route, name_errors)
{
    static const char *const bad[] = {"",     "*.", "*",  "a..b", "a b",
                                      "w*.x", ".a", "a.", "*..a", "a=b"};
    char longest[300];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(route_name_check(bad[i], strlen(bad[i])), -EINVAL, "'%s'", bad[i]);
    cr_assert_eq(route_name_check("*.a.b", 5), 1);
    cr_assert_eq(route_name_check("a.b", 3), 0);
    memset(longest, 'a', sizeof(longest));
    cr_assert_eq(route_name_check(longest, 253), 0);
    cr_assert_eq(route_name_check(longest, 254), -EINVAL, "longer than a DNS name");
}

/* 10,000 tenants: every name and wildcard routes to its own backend, and
 * the time a lookup takes is logged (a measurement, not asserted). */
Test(route, ten_thousand_routes)
{
    enum { N = 10000, LOOKUPS = 1000000 };
    static char names[N][48], snis[N][48];
    struct timespec t0, t1;
    volatile int sink = 0;
    double ns;

    cr_assert_eq(route_table_init(&routes, N), 0);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), i % 2 ? "*.t%d.example.net" : "t%d.example.net", i);
        cr_assert_eq(route_table_add(&routes, names[i], i), 0, "%s", names[i]);
    }
    for (int i = 0; i < N; i++) {
        const char *sni = snis[i];
        snprintf(snis[i], sizeof(snis[i]), i % 2 ? "www.T%d.example.net" : "t%d.Example.net", i);
        cr_assert_eq(route_table_pick(&routes, (const uint8_t *)sni, strlen(sni)), i, "%s", sni);
    }
    cr_assert_eq(route_table_pick(&routes, (const uint8_t *)"t1.example.net", 14), -1,
                 "t1 has only a wildcard");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned k = 0; k < LOOKUPS; k++) {
        const char *s = snis[(k * 7919U) % N];
        sink ^= route_table_pick(&routes, (const uint8_t *)s, strlen(s));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / LOOKUPS;
    cr_log_info("route lookup among %d routes: %.0f ns", N, ns);
    printf("route: lookup among %d routes (half wildcards): %.0f ns each\n", N, ns);
    route_table_free(&routes);
}
