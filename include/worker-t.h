/* A worker's type: one thread, one core, one io back end, its own
 * listeners, and the relay's pools and timers for its connections. Nothing
 * here is shared between workers, so the data path takes no lock. Types
 * only: worker.h has the functions. */
#ifndef RINGRELAY_WORKER_T_H
#define RINGRELAY_WORKER_T_H

#include "relay-t.h"
#include "runtime.h"
#include "stats.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

struct io_backend;

/* Configurations a worker runs connections on at once; a reload beyond
 * them waits (queued) until one has no connection left. */
#define WORKER_GENS 32

/* One runtime as a worker uses it, with what depends on its settings. */
struct worker_gen {
    struct runtime *rt;     /* shared by all workers; pools change through atomics only */
    uint32_t conns;         /* this worker's connections on it */
    struct relay_gen relay; /* timer lists and round-robin state on its settings */
};

/* A new configuration for a worker, handed over by the main thread. */
struct worker_update {
    struct runtime *rt; /* holds a reference for the worker */
    int listen_fd[RUNTIME_MAX_BINDS];
    uint8_t listen_li[RUNTIME_MAX_BINDS];
    int n_listen;
    int close_fd[RUNTIME_MAX_BINDS]; /* listening sockets no longer wanted */
    int n_close;
};

/* What another thread asks of a worker, done at its next tick. */
enum worker_job_kind {
    WORKER_JOB_CONNS, /* write its connections (show conns) into text */
    WORKER_JOB_CLOSE, /* reset its connections to the servers in slots (shutdown sessions) */
};

struct worker_job {
    struct worker_job *next; /* in the worker's list */
    enum worker_job_kind kind;
    const uint8_t *slots; /* WORKER_JOB_CLOSE: a bit per server counter slot */
    char *text;           /* WORKER_JOB_CONNS: what the worker wrote (malloc'd) */
    size_t len;
    uint32_t count;  /* WORKER_JOB_CLOSE: connections reset */
    atomic_int done; /* set by the worker last: then the fields above are its */
};

/* One job for each worker, posted together. */
struct worker_round {
    int n; /* workers, and jobs */
    uint8_t slots[(STATS_MAX_SERVERS + 7) / 8];
    struct worker_job job[];
};

/* Why accepting is paused (accept_paused), any number at once. */
#define ACCEPT_PAUSE_ERROR 0x2  /* EMFILE/ENFILE/ENOBUFS: backing off */
#define ACCEPT_PAUSE_RELOAD 0x4 /* switching listening sockets to a new configuration */
#define ACCEPT_PAUSE_DRAIN 0x8  /* stopping: never resumed */

struct worker {
    int id;
    int cpu; /* -1: not pinned */
    pthread_t thread;
    const struct io_backend *io;
    void *io_state;
    atomic_int stop; /* set to 1 to make the thread return */
    int init_result;
    sem_t *started; /* posted once init_result is known */

    int listen_fd[RUNTIME_MAX_BINDS];
    uint8_t listen_li[RUNTIME_MAX_BINDS]; /* the listener each socket belongs to */
    /* Each socket's own address when it is bound to one, the destination
     * of every client it accepts (no getsockname per connection);
     * AF_UNSPEC for a wildcard bind. */
    union sockaddr_inet listen_local[RUNTIME_MAX_BINDS];
    int n_listen;
    uint8_t accept_paused; /* ACCEPT_PAUSE_* reasons */
    uint64_t accept_resume_ms;
    uint32_t accept_backoff_ms;

    struct relay_pool pool; /* the relay's: connection slots, buffers, pipes */

    /* The runtimes this worker has connections on: new connections take
     * gens[cur_gen]; a connection keeps the one it started with. */
    struct worker_gen gens[WORKER_GENS];
    uint8_t cur_gen;
    _Atomic(struct worker_update *) update; /* set by main; taken at a tick */
    uint64_t now_ms;
    uint64_t next_tick_ms;

    struct stats_block *st; /* this worker's counters: only it writes them */
    /* Jobs other threads posted (newest first), all taken at a tick. */
    _Atomic(struct worker_job *) jobs;
    /* Stopping: main sets drain (stop accepting, close the listeners, let
     * connections finish), then maybe close_all (reset what is left). */
    atomic_int drain, close_all;
    uint8_t drained;          /* listeners closed */
    struct access_ring *alog; /* NULL: no access log */
};

#endif
