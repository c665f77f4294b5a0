/* The reload queue, step by step: one configuration in flight; SIGHUPs
 * that come meanwhile are one reload, done when the workers have taken
 * what was handed (latest wins: the file is read then); a reload covers a
 * DNS change; nothing queued is ever dropped. */
#include "reload_queue.h"

#include <criterion/criterion.h>

Test(reload_queue, sighups_in_flight_are_one_reload_done_after)
{
    struct reload_queue q;
    uint64_t applied;

    reload_queue_init(&q);
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_IDLE);
    cr_assert_eq(applied, 0);
    cr_assert_not(reload_queue_pending(&q));
    cr_assert_eq(reload_queue_hup(&q), 0);
    cr_assert(reload_queue_pending(&q));
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_FILE);
    reload_queue_handed(&q, 2);
    for (int i = 0; i < 19; i++) /* a storm while generation 2 is taken */
        cr_assert_eq(reload_queue_hup(&q), i > 0, "SIGHUP %d", i);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(reload_queue_next(&q, 0, &applied), RELOAD_WAIT, "not taken: wait");
        cr_assert_eq(applied, 0);
    }
    cr_assert_eq(atomic_load(&q.applied), 1);
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_FILE, "taken: the queued one runs");
    cr_assert_eq(applied, 2);
    cr_assert_eq(atomic_load(&q.applied), 2);
    reload_queue_handed(&q, 3);
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_IDLE, "the storm was one reload");
    cr_assert_eq(applied, 3);
    cr_assert_not(reload_queue_pending(&q));
}

Test(reload_queue, a_reload_covers_a_dns_change)
{
    struct reload_queue q;
    uint64_t applied;

    reload_queue_init(&q);
    reload_queue_dns(&q);
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_NAMES);
    reload_queue_handed(&q, 2);
    reload_queue_dns(&q);
    (void)reload_queue_hup(&q);
    cr_assert_eq(reload_queue_next(&q, 0, &applied), RELOAD_WAIT);
    cr_assert(reload_queue_pending(&q));
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_FILE);
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_IDLE, "the DNS change went with it");
    reload_queue_dns(&q);
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_NAMES, "a later one is its own");
}

/* A refused reload hands nothing: what is queued after it still runs. */
Test(reload_queue, a_refused_reload_leaves_the_queue_moving)
{
    struct reload_queue q;
    uint64_t applied;

    reload_queue_init(&q);
    (void)reload_queue_hup(&q);
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_FILE);
    /* the file was bad: nothing handed */
    (void)reload_queue_hup(&q);
    cr_assert_eq(reload_queue_next(&q, 1, &applied), RELOAD_FILE);
    cr_assert_eq(applied, 0);
    cr_assert_eq(atomic_load(&q.applied), 1);
}
