/* The descriptor budget: what the open-file limit leaves for connections
 * once the process's own descriptors, a spare and the pipe pools are
 * counted, and in which order each gives way. */
#include "fd_budget.h"

/* Standard streams, logs and a reopened one, signal and wake pipes, a
 * configuration file being read. */
#define FD_BASE 16
uint32_t fd_budget_fixed(const struct fd_needs *n)
{
    /* Each worker: a ring (or epoll) descriptor and its own listening
     * sockets (SO_REUSEPORT). */
    return FD_BASE + n->stats + n->checkers + n->workers * (1 + n->binds);
}

static uint64_t take(uint64_t *left, uint64_t want)
{
    uint64_t got = want < *left ? want : *left;

    *left -= got;
    return got;
}

void fd_budget_fit(struct fd_budget *b, uint64_t limit, uint32_t asked, const struct fd_needs *n)
{
    uint64_t per_pipe_set = 2ULL * n->workers;
    uint64_t left, conns, pipe_fds;

    b->limit = limit;
    b->asked = asked ? asked : FD_BUDGET_DEFAULT;
    b->fixed = fd_budget_fixed(n);
    left = limit > b->fixed ? limit - b->fixed : 0;
    /* First the connections that come before anything else. */
    conns = take(&left, 2ULL * (asked ? asked : FD_BUDGET_FIRST)) / 2;
    b->spare = (uint32_t)take(&left, FD_BUDGET_SPARE);
    pipe_fds = take(&left, per_pipe_set * FD_BUDGET_PIPES);
    /* What a partial pipe set leaves (up to 2 x workers - 1) stays unused:
     * returned, it would buy a connection that the next set takes away. */
    b->pipes = (uint32_t)(pipe_fds / per_pipe_set);
    if (!asked)
        conns += take(&left, 2ULL * (FD_BUDGET_DEFAULT - conns)) / 2;
    b->connections = conns ? (uint32_t)conns : 1;
}

int fd_budget_short(const struct fd_budget *b, uint32_t asked)
{
    return b->connections < (asked ? asked : FD_BUDGET_FIRST);
}
