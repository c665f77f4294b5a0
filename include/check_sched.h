/* When each health check runs: the servers by the time they are next
 * due, earliest first, and a bound on how many probes run at once. Pure:
 * the checker gives it the clock and the end of each probe, so that it is
 * tested without a socket. */
#ifndef RINGRELAY_CHECK_SCHED_H
#define RINGRELAY_CHECK_SCHED_H

#include <stdint.h>

struct check_sched {
    uint32_t *heap; /* the checks not running, earliest due first */
    uint64_t *due;  /* each check's next time, monotonic ms */
    int n, len;     /* checks; of them in the heap */
    int running, max_running;
};

/* n checks (0 to n - 1), all due at now, at most max_running (at least 1)
 * at once. Returns 0, or -ENOMEM. */
int check_sched_init(struct check_sched *cs, int n, int max_running, uint64_t now);
void check_sched_fini(struct check_sched *cs);

/* The next check to start at now, counted as running; -1 when none is due
 * or max_running are running. */
int check_sched_next(struct check_sched *cs, uint64_t now);

/* Check i, running, ended at now: due again interval_ms later, so a
 * server is probed at least every interval plus its probe's timeout. */
void check_sched_done(struct check_sched *cs, int i, uint64_t now, uint32_t interval_ms);

/* Milliseconds until a check may start: 0 when one can now, -1 when none
 * can before a running one ends (all running, or the bound reached). */
int64_t check_sched_wait(const struct check_sched *cs, uint64_t now);

#endif
