/* The descriptor budget: every share is non-decreasing in the limit, the
 * total never exceeds it, and connections give way last. */
#include "fd_budget.h"

#include <criterion/criterion.h>

static const uint32_t workers[] = {1, 2, 16, 1024};
static const uint32_t asks[] = {0, 1, 20, 400, 1000, 9000, 100000};

static uint64_t used(const struct fd_budget *b, const struct fd_needs *n)
{
    return 2ULL * b->connections + b->fixed + b->spare + 2ULL * n->workers * b->pipes;
}

Test(fd_budget, monotonic_and_within_the_limit)
{
    for (size_t w = 0; w < sizeof(workers) / sizeof(workers[0]); w++) {
        struct fd_needs n = {.workers = workers[w], .binds = 2, .checkers = 3, .stats = 1};
        for (size_t a = 0; a < sizeof(asks) / sizeof(asks[0]); a++) {
            struct fd_budget prev = {0}, b;
            for (uint64_t limit = 1; limit <= 40000; limit++) {
                fd_budget_fit(&b, limit, asks[a], &n);
                cr_assert_geq(b.connections, 1);
                cr_assert_geq(b.connections, prev.connections, "w=%u ask=%u limit=%lu", workers[w],
                              asks[a], (unsigned long)limit);
                cr_assert_geq(b.pipes, prev.pipes);
                cr_assert_geq(b.spare, prev.spare);
                cr_assert_leq(b.pipes, FD_BUDGET_PIPES);
                cr_assert_leq(b.spare, FD_BUDGET_SPARE);
                cr_assert_leq(b.connections, asks[a] ? asks[a] : FD_BUDGET_DEFAULT);
                if (b.connections > 1)
                    cr_assert_leq(used(&b, &n), limit, "w=%u ask=%u limit=%lu", workers[w], asks[a],
                                  (unsigned long)limit);
                prev = b;
            }
        }
    }
}

/* The field trial's numbers: 2 workers under 1024, 16 under 4096 and 8192. */
Test(fd_budget, modest_limits_leave_most_to_connections)
{
    struct fd_needs two = {.workers = 2, .binds = 1}, sixteen = {.workers = 16, .binds = 1};
    struct fd_budget b;

    fd_budget_fit(&b, 1024, 0, &two);
    cr_assert_eq(b.connections, (1024 - fd_budget_fixed(&two)) / 2);
    cr_assert_eq(b.pipes, 0);
    cr_assert(fd_budget_short(&b, 0));
    fd_budget_fit(&b, 1024, 400, &two);
    cr_assert_eq(b.connections, 400, "asked for 400 and 400 fit");
    cr_assert_eq(b.spare, FD_BUDGET_SPARE);
    cr_assert_eq(b.pipes, (1024 - 800 - fd_budget_fixed(&two) - FD_BUDGET_SPARE) / 4);
    cr_assert_not(fd_budget_short(&b, 400));
    fd_budget_fit(&b, 4096, 0, &sixteen);
    cr_assert_eq(b.connections, FD_BUDGET_FIRST, "the first 1,000 before pipes");
    cr_assert_eq(b.pipes, (4096 - 2000 - fd_budget_fixed(&sixteen) - FD_BUDGET_SPARE) / 32);
    fd_budget_fit(&b, 8192, 0, &sixteen);
    cr_assert_eq(b.pipes, FD_BUDGET_PIPES);
    cr_assert_eq(b.connections,
                 (8192 - fd_budget_fixed(&sixteen) - FD_BUDGET_SPARE - 16 * 2 * 128) / 2,
                 "then pipes, then the rest");
}

Test(fd_budget, ample_limit_gives_everything)
{
    struct fd_needs n = {.workers = 2, .binds = 4, .checkers = 2, .stats = 1};
    struct fd_budget b;

    fd_budget_fit(&b, UINT64_MAX, 0, &n);
    cr_assert_eq(b.connections, FD_BUDGET_DEFAULT);
    cr_assert_eq(b.pipes, FD_BUDGET_PIPES);
    cr_assert_eq(b.spare, FD_BUDGET_SPARE);
    fd_budget_fit(&b, 20000, 0, &n);
    cr_assert_eq(b.pipes, FD_BUDGET_PIPES, "the common hard limit keeps full pipe pools");
    cr_assert_gt(b.connections, 9000);
    cr_assert_not(fd_budget_short(&b, 0));
}
