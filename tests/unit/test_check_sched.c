/* The health checks' schedule, on a clock the test turns: checks start
 * earliest due first, never more than the bound at once, each due an
 * interval after its last probe ended; so with room for every probe a
 * server is probed at least every interval plus timeout, whatever the
 * number of servers (1,000 dead ones included). */
#include "check_sched.h"

#include <criterion/criterion.h>
#include <stdlib.h>

Test(check_sched, earliest_first_within_the_bound)
{
    struct check_sched cs;

    cr_assert_eq(check_sched_init(&cs, 5, 2, 0), 0);
    cr_assert_eq(check_sched_next(&cs, 0), 0);
    cr_assert_eq(check_sched_next(&cs, 0), 1);
    cr_assert_eq(check_sched_next(&cs, 0), -1, "two run: the bound");
    cr_assert_eq(check_sched_wait(&cs, 0), -1, "nothing can start before one ends");
    check_sched_done(&cs, 0, 10, 100); /* due at 110 */
    cr_assert_eq(check_sched_wait(&cs, 10), 0);
    cr_assert_eq(check_sched_next(&cs, 10), 2);
    check_sched_done(&cs, 1, 20, 100); /* 120 */
    check_sched_done(&cs, 2, 30, 100); /* 130 */
    cr_assert_eq(check_sched_next(&cs, 40), 3);
    cr_assert_eq(check_sched_next(&cs, 40), 4);
    check_sched_done(&cs, 4, 50, 100); /* 150 */
    check_sched_done(&cs, 3, 60, 100); /* 160 */
    cr_assert_eq(check_sched_next(&cs, 100), -1, "none due before 110");
    cr_assert_eq(check_sched_wait(&cs, 100), 10);
    cr_assert_eq(check_sched_next(&cs, 200), 0, "due 110");
    cr_assert_eq(check_sched_next(&cs, 200), 1, "due 120");
    check_sched_done(&cs, 0, 200, 100);
    cr_assert_eq(check_sched_next(&cs, 200), 2, "due 130");
    check_sched_done(&cs, 1, 200, 100);
    cr_assert_eq(check_sched_next(&cs, 200), 4, "due 150, before 3 at 160");
    check_sched_fini(&cs);
}

/* Turns the clock in steps of 10 ms for 30 s: every probe takes its whole
 * timeout (a dead server), and ends at its deadline. Returns the longest
 * gap between two starts of one check. */
static uint64_t longest_gap(int n, int bound, uint32_t interval, uint32_t timeout)
{
    struct check_sched cs;
    uint64_t *started = calloc((size_t)n, sizeof(*started)),
             *ends = calloc((size_t)n, sizeof(*ends));
    uint64_t worst = 0;
    int *seen = calloc((size_t)n, sizeof(*seen));

    cr_assert(started && ends && seen);
    cr_assert_eq(check_sched_init(&cs, n, bound, 0), 0);
    for (uint64_t now = 0; now <= 30000; now += 10) {
        int i;
        for (int k = 0; k < n; k++)
            if (ends[k] && ends[k] <= now) {
                ends[k] = 0;
                check_sched_done(&cs, k, now, interval);
            }
        while ((i = check_sched_next(&cs, now)) >= 0) {
            cr_assert_eq(ends[i], 0, "check %d started while it runs", i);
            if (seen[i] && now - started[i] > worst)
                worst = now - started[i];
            seen[i]++;
            started[i] = now;
            ends[i] = now + timeout;
        }
        cr_assert_leq(cs.running, bound);
    }
    for (int k = 0; k < n; k++)
        cr_assert_geq(seen[k], 2, "check %d probed %d times in 30 s", k, seen[k]);
    check_sched_fini(&cs);
    free(started);
    free(ends);
    free(seen);
    return worst;
}

Test(check_sched, a_thousand_dead_servers_within_interval_plus_timeout)
{
    cr_assert_leq(longest_gap(1000, 1000, 2000, 1000), 2000 + 1000);
    cr_assert_leq(longest_gap(4096, 1024, 2000, 100), 2000 + 100 + 10);
}

/* With room for one probe at a time, checks take turns: none starves. */
Test(check_sched, one_at_a_time_takes_turns)
{
    struct check_sched cs;
    int order[9];

    cr_assert_eq(check_sched_init(&cs, 3, 1, 0), 0);
    for (int k = 0; k < 9; k++) {
        order[k] = check_sched_next(&cs, (uint64_t)k * 1000);
        cr_assert_geq(order[k], 0);
        check_sched_done(&cs, order[k], (uint64_t)k * 1000 + 1, 0);
    }
    for (int k = 3; k < 9; k++)
        cr_assert_eq(order[k], order[k - 3], "turn %d", k);
    check_sched_fini(&cs);
}
