/* The worker round: one job posted to every worker at once, each done at
 * that worker's next tick, in the order posted, and pending until then;
 * what the poster gave is the round's own copy. Workers here have no
 * connections, so their jobs do nothing but answer. */
#include "worker.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define N 3

static struct worker *workers(void)
{
    struct worker *ws = calloc(N, sizeof(*ws));

    cr_assert_not_null(ws);
    for (int i = 0; i < N; i++) {
        ws[i].id = i;
        atomic_init(&ws[i].jobs, NULL);
    }
    return ws;
}

Test(worker_round, pending_until_each_worker_ticks)
{
    struct worker *ws = workers();
    uint8_t slots[sizeof(((struct worker_round *)0)->slots)] = {0};
    struct worker_round *close, *conns;

    slots[0] = 0x20;
    close = worker_round_start(ws, N, WORKER_JOB_CLOSE, slots);
    conns = worker_round_start(ws, N, WORKER_JOB_CONNS, NULL);
    cr_assert(close && conns);
    slots[0] = 0; /* the round keeps its own copy */
    cr_assert_eq(close->slots[0], 0x20);
    cr_assert_eq(close->job[1].slots, close->slots);
    cr_assert_eq(worker_round_pending(close), N);
    cr_assert_eq(worker_round_pending(conns), N);

    worker_jobs_run(&ws[1]);
    cr_assert_eq(worker_round_pending(close), N - 1, "one worker ticked: both its jobs done");
    cr_assert_eq(worker_round_pending(conns), N - 1);
    cr_assert(atomic_load(&close->job[1].done) && !atomic_load(&close->job[0].done));
    worker_jobs_run(&ws[1]); /* nothing new posted: nothing done twice */
    cr_assert_eq(worker_round_pending(close), N - 1);

    worker_jobs_run(&ws[0]);
    worker_jobs_run(&ws[2]);
    cr_assert_eq(worker_round_pending(close), 0);
    cr_assert_eq(worker_round_pending(conns), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(close->job[i].count, 0, "no connection to reset");
        cr_assert_not_null(conns->job[i].text, "show conns wrote its (empty) part");
        cr_assert_eq(conns->job[i].len, 0);
        cr_assert_null(atomic_load(&ws[i].jobs));
    }
    worker_round_free(close);
    worker_round_free(conns);
    free(ws);
}

/* Jobs are done oldest first: a show conns posted after a shutdown
 * sessions sees what is left after it. The list is newest first until
 * the worker takes it. */
Test(worker_round, jobs_taken_in_the_order_posted)
{
    struct worker *ws = workers();
    struct worker_round *rd[4];

    for (int i = 0; i < 4; i++)
        rd[i] = worker_round_start(ws, 1, i % 2 ? WORKER_JOB_CONNS : WORKER_JOB_CLOSE, NULL);
    cr_assert_eq(atomic_load(&ws[0].jobs), &rd[3]->job[0], "posted on the head");
    worker_jobs_run(&ws[0]);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(worker_round_pending(rd[i]), 0);
        /* Relinked oldest first to be run: each points at the next posted. */
        cr_assert_eq(rd[i]->job[0].next, i < 3 ? &rd[i + 1]->job[0] : NULL);
    }
    for (int i = 0; i < 4; i++)
        worker_round_free(rd[i]);
    free(ws);
}
