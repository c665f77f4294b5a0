/* The health checks' schedule: a binary heap of checks by due time. */
#include "check_sched.h"

#include <errno.h>
#include <stdlib.h>

static int earlier(const struct check_sched *cs, int a, int b)
{
    uint64_t da = cs->due[cs->heap[a]], db = cs->due[cs->heap[b]];

    return da < db || (da == db && cs->heap[a] < cs->heap[b]);
}

static void swap(struct check_sched *cs, int a, int b)
{
    uint32_t t = cs->heap[a];

    cs->heap[a] = cs->heap[b];
    cs->heap[b] = t;
}

static void sift_up(struct check_sched *cs, int i)
{
    while (i > 0 && earlier(cs, i, (i - 1) / 2)) {
        swap(cs, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(struct check_sched *cs, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < cs->len && earlier(cs, l, m))
            m = l;
        if (r < cs->len && earlier(cs, r, m))
            m = r;
        if (m == i)
            return;
        swap(cs, i, m);
        i = m;
    }
}

int check_sched_init(struct check_sched *cs, int n, int max_running, uint64_t now)
{
    cs->heap = calloc((size_t)n + 1, sizeof(*cs->heap));
    cs->due = calloc((size_t)n + 1, sizeof(*cs->due));
    if (!cs->heap || !cs->due) {
        check_sched_fini(cs);
        return -ENOMEM;
    }
    cs->n = cs->len = n;
    cs->running = 0;
    cs->max_running = max_running > 0 ? max_running : 1;
    for (int i = 0; i < n; i++) { /* all due now, in order: already a heap */
        cs->heap[i] = (uint32_t)i;
        cs->due[i] = now;
    }
    return 0;
}

void check_sched_fini(struct check_sched *cs)
{
    free(cs->heap);
    free(cs->due);
    cs->heap = NULL;
    cs->due = NULL;
    cs->n = cs->len = 0;
}

int check_sched_next(struct check_sched *cs, uint64_t now)
{
    int i;

    if (!cs->len || cs->running >= cs->max_running || cs->due[cs->heap[0]] > now)
        return -1;
    i = (int)cs->heap[0];
    cs->heap[0] = cs->heap[--cs->len];
    sift_down(cs, 0);
    cs->running++;
    return i;
}

void check_sched_done(struct check_sched *cs, int i, uint64_t now, uint32_t interval_ms)
{
    cs->due[i] = now + interval_ms;
    cs->heap[cs->len++] = (uint32_t)i;
    sift_up(cs, cs->len - 1);
    cs->running--;
}

int64_t check_sched_wait(const struct check_sched *cs, uint64_t now)
{
    uint64_t due;

    if (!cs->len || cs->running >= cs->max_running)
        return -1;
    due = cs->due[cs->heap[0]];
    return due <= now ? 0 : (int64_t)(due - now);
}
