/* The per-source count: a source gets exactly its limit, others are not
 * held back by it, and what ends gives its place back. */
#include "srclimit.h"

#include "addr.h"

#include <criterion/criterion.h>
#include <stdio.h>

static uint64_t key_of(const char *s)
{
    union sockaddr_inet a;

    cr_assert_eq(addr_parse(s, &a), 0, "%s", s);
    return srclimit_key(&a.sa);
}

Test(srclimit, limit_per_address_not_per_port)
{
    uint64_t flood = key_of("198.51.100.7:1000"), same = key_of("198.51.100.7:2000");
    uint64_t other = key_of("198.51.100.8:1000");
    int taken = 0;

    cr_assert_eq(flood, same, "the port must not count");
    for (int i = 0; i < 100; i++)
        taken += srclimit_take(flood, 10) == 0;
    cr_assert_eq(taken, 10);
    cr_assert_eq(srclimit_take(other, 10), 0, "another address is not held back");
    srclimit_put(flood);
    cr_assert_eq(srclimit_take(flood, 10), 0, "a place given back is taken again");
    cr_assert_eq(srclimit_take(flood, 10), -1);
    for (int i = 0; i < 10; i++)
        srclimit_put(flood);
    srclimit_put(other);
}

Test(srclimit, v4_mapped_counts_as_v4)
{
    cr_assert_eq(key_of("[::ffff:192.0.2.1]:1"), key_of("192.0.2.1:2"));
}

Test(srclimit, many_sources_each_get_their_limit)
{
    char s[32];
    int refused = 0;

    /* 5000 sources at their limit of 3 each: with four rows of 65536 cells
     * none is refused (two rows refused 21). */
    for (int i = 0; i < 5000; i++) {
        snprintf(s, sizeof(s), "10.%d.%d.1:1", i / 250, i % 250);
        for (int k = 0; k < 3; k++)
            refused += srclimit_take(key_of(s), 3) != 0;
    }
    cr_assert_eq(refused, 0, "%d of 15000 refused", refused);
}

Test(srclimit, rate_per_second_starts_over)
{
    uint64_t flood = key_of("203.0.113.9:1"), other = key_of("203.0.113.10:1");
    int taken = 0;

    for (int i = 0; i < 2000; i++)
        taken += srclimit_rate(flood, 50, 1000) == 0;
    cr_assert_eq(taken, 50, "a second holds the limit, no more");
    cr_assert_eq(srclimit_rate(other, 50, 1000), 0, "another address is not held back");
    cr_assert_eq(srclimit_rate(flood, 50, 999), -1, "a worker a moment behind counts in it too");
    cr_assert_eq(srclimit_rate(flood, 50, 1001), 0, "the next second starts over");
}
