/* Worker threads: the clock, the tick, a new configuration taken from the
 * main thread (runtime generations), and draining on stop. The connections
 * they run, and the pools those draw on, are the relay's. */
#include "worker.h"

#include "accepting.h"
#include "io.h"
#include "log.h"
#include "relay.h"
#include "relay_account.h"
#include "relay_pool.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100

/* A generation on rt: the relay's timer lists and round-robin state on its
 * settings, no connections yet. */
static void gen_init(struct worker_gen *g, struct runtime *rt)
{
    memset(g, 0, sizeof(*g));
    g->rt = rt;
    relay_gen_init(&g->relay, rt);
}

/* Lets go of a generation: the relay's state on it, and its runtime. */
static void gen_fini(struct worker_gen *g)
{
    if (!g->rt)
        return;
    relay_gen_fini(&g->relay, g->rt);
    runtime_put(g->rt);
    g->rt = NULL;
}

/* Learns the address each listening socket is bound to, where it is one
 * address and not a wildcard: that is every accepted client's destination. */
static void listen_locals(struct worker *w)
{
    for (int i = 0; i < w->n_listen; i++) {
        union sockaddr_inet *a = &w->listen_local[i];
        socklen_t len = sizeof(*a);

        if (getsockname(w->listen_fd[i], &a->sa, &len) == -1 ||
            (a->sa.sa_family == AF_INET && a->in.sin_addr.s_addr == htonl(INADDR_ANY)) ||
            (a->sa.sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr)) ||
            (a->sa.sa_family != AF_INET && a->sa.sa_family != AF_INET6))
            a->sa.sa_family = AF_UNSPEC;
    }
}

int worker_init(struct worker *w, int id, struct runtime *rt, const int *listen_fd,
                const uint8_t *listen_li, int n_listen, atomic_uint *active_total)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    gen_init(&w->gens[0], rt);
    runtime_get(rt);
    w->cur_gen = 0;
    atomic_init(&w->update, NULL);
    w->n_listen = n_listen;
    memcpy(w->listen_fd, listen_fd, sizeof(int) * (size_t)n_listen);
    memcpy(w->listen_li, listen_li, (size_t)n_listen);
    listen_locals(w);
    accepting_reset(w);
    w->st = stats_block_new(id);
    if (relay_pool_init(w, rt->max_connections, rt->pipes_per_worker, active_total) < 0 || !w->st) {
        worker_fini(w);
        return -ENOMEM;
    }
    worker_clock(w);
    return 0;
}

/* An update never taken: close the sockets it opened for this worker. */
static void worker_drop_update(struct worker *w)
{
    struct worker_update *u = atomic_exchange(&w->update, NULL);

    if (!u)
        return;
    for (int i = 0; i < u->n_listen; i++) {
        int kept = 0;
        for (int j = 0; j < w->n_listen && !kept; j++)
            kept = u->listen_fd[i] == w->listen_fd[j];
        if (!kept)
            close(u->listen_fd[i]);
    }
    runtime_put(u->rt);
    free(u);
}

void worker_fini(struct worker *w)
{
    relay_pool_fini(w);
    for (int i = 0; i < w->n_listen; i++)
        if (w->listen_fd[i] >= 0)
            close(w->listen_fd[i]);
    worker_drop_update(w);
    for (int g = 0; g < WORKER_GENS; g++)
        gen_fini(&w->gens[g]);
    stats_block_free(w->id);
    w->st = NULL;
    w->n_listen = 0;
}

void worker_clock(struct worker *w)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    w->now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int worker_ms_to_tick(struct worker *w)
{
    if (w->next_tick_ms <= w->now_ms)
        return 0;
    return (int)(w->next_tick_ms - w->now_ms);
}

/* Lets go of old generations whose last connection has ended. */
static void gens_release(struct worker *w)
{
    for (int g = 0; g < WORKER_GENS; g++) {
        if (g == w->cur_gen || !w->gens[g].rt || w->gens[g].conns)
            continue;
        gen_fini(&w->gens[g]);
    }
}

/* Runs the next tick in a millisecond, not TICK_MS: a step is waiting for
 * the accepts in flight to be cancelled, with accepting paused. */
static void soon(struct worker *w)
{
    w->next_tick_ms = w->now_ms + 1;
}

/* Takes a new configuration from main: stops accepting, waits for accepts
 * in flight, swaps the listening sockets and the runtime new connections
 * get, and accepts again. Connections already open keep theirs. */
static void reload_step(struct worker *w)
{
    struct worker_update *u = atomic_load(&w->update);
    int slot = -1;

    gens_release(w);
    if (!u)
        return;
    for (int g = 0; g < WORKER_GENS && slot < 0; g++)
        if (!w->gens[g].rt)
            slot = g;
    if (slot < 0)
        return; /* every generation still has connections: next tick */
    accepting_pause(w, ACCEPT_PAUSE_RELOAD);
    if (!w->io->accept_idle(w)) {
        soon(w); /* new clients wait in the queue until the swap: not a whole tick */
        return;
    }
    for (int i = 0; i < u->n_close; i++)
        close(u->close_fd[i]);
    memcpy(w->listen_fd, u->listen_fd, sizeof(w->listen_fd));
    memcpy(w->listen_li, u->listen_li, sizeof(w->listen_li));
    w->n_listen = u->n_listen;
    listen_locals(w);
    gen_init(&w->gens[slot], u->rt); /* the update's reference becomes the generation's */
    w->cur_gen = (uint8_t)slot;
    atomic_store(&w->update, NULL);
    free(u);
    accepting_resume(w, ACCEPT_PAUSE_RELOAD);
}

/* Stopping: no more accepts. What the listeners already queued is taken
 * and served, then they close; a process started beside this one keeps
 * taking new connections on its own sockets. */
static void drain_step(struct worker *w)
{
    if (atomic_load_explicit(&w->close_all, memory_order_relaxed))
        relay_close_all(w);
    if (w->drained || !atomic_load_explicit(&w->drain, memory_order_relaxed))
        return;
    accepting_pause(w, ACCEPT_PAUSE_DRAIN);
    if (!w->io->accept_idle(w))
        return;
    for (int i = 0; i < w->n_listen; i++) {
        int fd;
        while ((fd = accept4(w->listen_fd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
            relay_on_accept(w, fd, i);
        close(w->listen_fd[i]);
        w->listen_fd[i] = -1;
    }
    w->n_listen = 0;
    w->drained = 1;
}

#define DUMP_MAX 10000 /* connections per worker in one show conns */

/* A job posted by another thread: done here, then marked done (the
 * poster reads what it wrote after seeing that). */
static void job_run(struct worker *w, struct worker_job *j)
{
    FILE *out;

    if (j->kind == WORKER_JOB_CLOSE) {
        j->count = relay_close_servers(w, j->slots);
    } else if ((out = open_memstream(&j->text, &j->len))) {
        relay_dump_conns(w, out, DUMP_MAX);
        fclose(out);
    }
    atomic_store(&j->done, 1);
}

void worker_jobs_run(struct worker *w)
{
    struct worker_job *j = atomic_exchange(&w->jobs, NULL), *rev = NULL;

    while (j) { /* posted newest first */
        struct worker_job *next = j->next;
        j->next = rev;
        rev = j;
        j = next;
    }
    while (rev) {
        struct worker_job *next = rev->next; /* once done, the job is its poster's again */
        job_run(w, rev);
        rev = next;
    }
}

static void job_post(struct worker *w, struct worker_job *j)
{
    struct worker_job *head = atomic_load(&w->jobs);

    do
        j->next = head;
    while (!atomic_compare_exchange_weak(&w->jobs, &head, j));
}

struct worker_round *worker_round_start(struct worker *ws, int n, enum worker_job_kind kind,
                                        const uint8_t *slots)
{
    struct worker_round *rd = calloc(1, sizeof(*rd) + (size_t)n * sizeof(rd->job[0]));

    if (!rd)
        return NULL;
    rd->n = n;
    if (slots)
        memcpy(rd->slots, slots, sizeof(rd->slots));
    for (int i = 0; i < n; i++) {
        rd->job[i].kind = kind;
        rd->job[i].slots = rd->slots;
        atomic_init(&rd->job[i].done, 0);
    }
    for (int i = 0; i < n; i++) /* all posted before any is waited for */
        job_post(&ws[i], &rd->job[i]);
    return rd;
}

int worker_round_pending(const struct worker_round *rd)
{
    int left = 0;

    for (int i = 0; i < rd->n; i++)
        left += !atomic_load(&rd->job[i].done);
    return left;
}

void worker_round_free(struct worker_round *rd)
{
    if (!rd)
        return;
    for (int i = 0; i < rd->n; i++)
        free(rd->job[i].text);
    free(rd);
}

void worker_tick(struct worker *w)
{
    worker_clock(w);
    if (w->now_ms < w->next_tick_ms)
        return;
    w->next_tick_ms = w->now_ms + TICK_MS;
    stat_inc(&w->st->w.heartbeat);
    relay_timers_run(w);
    reload_step(w);
    worker_jobs_run(w);
    drain_step(w);
    relay_fd_wait_retry(w); /* before new clients: these came first */
    accepting_tick(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    cpu_set_t set;

    snprintf(name, sizeof(name), "rr-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    if (w->cpu >= 0) {
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    w->init_result = w->io->init(w);
    if (w->init_result < 0) {
        log_error("worker %d: %s back end: %s", w->id, w->io->name, strerror(-w->init_result));
        sem_post(w->started);
        return NULL;
    }
    w->io->accept_start(w);
    sem_post(w->started);
    w->io->run(w);
    w->io->fini(w);
    return NULL;
}

int worker_start(struct worker *w, const struct io_backend *io, int cpu, sem_t *started)
{
    w->io = io;
    w->cpu = cpu;
    w->started = started;
    atomic_store(&w->stop, 0);
    return -pthread_create(&w->thread, NULL, worker_main, w);
}
