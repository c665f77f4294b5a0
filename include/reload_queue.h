/* The order in which configurations reach the workers: one handed at a
 * time; a SIGHUP or a DNS change that comes meanwhile is queued, several
 * of a kind as one (latest wins: the file is read when the reload runs),
 * a reload covering a DNS change, and done once every worker has taken
 * the one handed. Pure: the main thread says what came and whether the
 * workers took what it handed; the stats thread reads what is pending. */
#ifndef RINGRELAY_RELOAD_QUEUE_H
#define RINGRELAY_RELOAD_QUEUE_H

#include <stdatomic.h>
#include <stdint.h>

struct reload_queue {
    atomic_ullong handed;   /* the generation handed and not yet taken by every worker; 0: none */
    atomic_ullong applied;  /* the newest every worker took */
    atomic_int reload, dns; /* queued */
};

enum reload_step {
    RELOAD_IDLE,  /* nothing to do */
    RELOAD_WAIT,  /* a configuration is handed: wait for the workers */
    RELOAD_FILE,  /* read the file again and hand it over (the queue is emptied) */
    RELOAD_NAMES, /* make the running configuration again with the names' new addresses */
};

/* Generation 1 applied, nothing queued. */
void reload_queue_init(struct reload_queue *q);

/* A SIGHUP came; returns 1 when one was queued already (it joins it). */
int reload_queue_hup(struct reload_queue *q);

/* A name's addresses changed. */
void reload_queue_dns(struct reload_queue *q);

/* Generation gen is handed to the workers. */
void reload_queue_handed(struct reload_queue *q, uint64_t gen);

/* At a wake of the main thread, with taken: whether every worker has
 * what was handed. What was handed and taken is applied (its generation
 * in *applied, else 0); then what to do now. */
enum reload_step reload_queue_next(struct reload_queue *q, int taken, uint64_t *applied);

/* Whether anything is queued, or handed and not taken. */
int reload_queue_pending(struct reload_queue *q);

#endif
