/* The reload queue: one configuration in flight, the rest coalesced. */
#include "reload_queue.h"

void reload_queue_init(struct reload_queue *q)
{
    atomic_init(&q->handed, 0);
    atomic_init(&q->applied, 1);
    atomic_init(&q->reload, 0);
    atomic_init(&q->dns, 0);
}

int reload_queue_hup(struct reload_queue *q)
{
    return atomic_exchange(&q->reload, 1);
}

void reload_queue_dns(struct reload_queue *q)
{
    atomic_store(&q->dns, 1);
}

void reload_queue_handed(struct reload_queue *q, uint64_t gen)
{
    atomic_store(&q->handed, gen);
}

enum reload_step reload_queue_next(struct reload_queue *q, int taken, uint64_t *applied)
{
    uint64_t gen = atomic_load(&q->handed);

    *applied = 0;
    if (gen && !taken)
        return RELOAD_WAIT;
    if (gen) {
        atomic_store(&q->applied, gen);
        atomic_store(&q->handed, 0);
        *applied = gen;
    }
    if (atomic_exchange(&q->reload, 0)) {
        atomic_store(&q->dns, 0); /* the reload resolves the names too */
        return RELOAD_FILE;
    }
    return atomic_exchange(&q->dns, 0) ? RELOAD_NAMES : RELOAD_IDLE;
}

int reload_queue_pending(struct reload_queue *q)
{
    return atomic_load(&q->handed) || atomic_load(&q->reload) || atomic_load(&q->dns);
}
