/* Worker threads: pools sized at start, the clock, timers, accept back-off. */
#include "worker.h"

#include "io.h"
#include "log.h"
#include "relay.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Buffers per worker: what recv() can hold at once. A direction holds one
 * only while its bytes wait to be sent, so idle connections cost none. */
#define BUFS_PER_WORKER 1024
#define FIN_TIMEOUT_MS 30000

/* A generation's timer lists and their timeouts, from the settings of the
 * backend or listener each belongs to. */
static void gen_init(struct worker_gen *g, struct runtime *rt)
{
    const struct config *c = &rt->cfg;

    memset(g, 0, sizeof(*g));
    g->rt = rt;
    for (int k = 0; k < TIMER_KINDS; k++)
        for (int o = 0; o < TIMER_OWNERS; o++)
            list_init(&g->timers[k][o]);
    for (int b = 0; b < c->n_backends; b++) {
        uint32_t idle = c->backends[b].idle_timeout_ms;
        g->timeout_ms[TIMER_CONNECT][b] = c->backends[b].connect_timeout_ms;
        g->timeout_ms[TIMER_IDLE][b] = idle;
        g->timeout_ms[TIMER_FIN][b] = idle && idle < FIN_TIMEOUT_MS ? idle : FIN_TIMEOUT_MS;
    }
    for (int l = 0; l < c->n_listeners; l++) {
        g->timeout_ms[TIMER_HEADER][l] = c->listeners[l].header_timeout_ms;
        g->timeout_ms[TIMER_PEEK][l] = c->listeners[l].peek_timeout_ms;
    }
    /* Restarting a timer moves the connection in its list: do it at most a
     * few times per timeout, and at most once a second. */
    for (int k = 0; k < TIMER_KINDS; k++)
        for (int o = 0; o < TIMER_OWNERS; o++)
            g->touch_ms[k][o] = g->timeout_ms[k][o] / 4 < 1000 ? g->timeout_ms[k][o] / 4 : 1000;
    /* Out of memory, a pool picks by rotation instead of by weight. */
    for (int b = 0; b < c->n_backends; b++)
        (void)pool_rr_init(&g->rr[b], &rt->pools[b]);
}

/* Lets go of a generation: its round-robin state and its runtime. */
static void gen_fini(struct worker_gen *g)
{
    if (!g->rt)
        return;
    for (int b = 0; b < g->rt->cfg.n_backends; b++)
        pool_rr_fini(&g->rr[b]);
    runtime_put(g->rt);
    g->rt = NULL;
}

/* Zeroed memory whose pages cost nothing until touched. NULL on failure. */
static void *lazy_alloc(size_t size)
{
    void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

static void lazy_free(void *p, size_t size)
{
    if (p)
        munmap(p, size ? size : 1);
}

int worker_init(struct worker *w, int id, struct runtime *rt, const int *listen_fd,
                const uint8_t *listen_li, int n_listen, atomic_uint *active_total)
{
    uint32_t max_conns = rt->max_connections;

    memset(w, 0, sizeof(*w));
    w->id = id;
    gen_init(&w->gens[0], rt);
    runtime_get(rt);
    w->cur_gen = 0;
    atomic_init(&w->update, NULL);
    w->n_listen = n_listen;
    memcpy(w->listen_fd, listen_fd, sizeof(int) * (size_t)n_listen);
    memcpy(w->listen_li, listen_li, (size_t)n_listen);
    w->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
    w->n_conns = max_conns;
    w->active_total = active_total;
    w->n_bufs = BUFS_PER_WORKER;
    w->max_pipes = PIPES_PER_WORKER;

    /* Any worker may hold every connection, so each reserves room for all;
     * pages are touched only as slots are first used. */
    w->conns = lazy_alloc((size_t)max_conns * sizeof(*w->conns));
    w->free_conns = lazy_alloc((size_t)max_conns * sizeof(*w->free_conns));
    w->starved = lazy_alloc(2 * (size_t)max_conns * sizeof(*w->starved));
    w->pipes = calloc(w->max_pipes, sizeof(*w->pipes));
    w->free_pipes = calloc(w->max_pipes, sizeof(*w->free_pipes));
    w->st = stats_block_new(id);
    /* mmap: page-aligned, and untouched buffers cost no memory. */
    w->bufs = mmap(NULL, (size_t)w->n_bufs * BUF_STRIDE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->bufs == MAP_FAILED)
        w->bufs = NULL;
    if (!w->conns || !w->free_conns || !w->starved || !w->pipes || !w->free_pipes || !w->bufs ||
        !w->st) {
        worker_fini(w);
        return -ENOMEM;
    }
    w->n_free = 0;
    w->n_used = 0;
    for (uint32_t i = 0; i < w->max_pipes; i++) {
        w->pipes[i].r = w->pipes[i].w = -1;
        w->free_pipes[i] = (uint16_t)(w->max_pipes - 1 - i);
    }
    w->n_pipes_free = w->max_pipes;
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
    if (w->conns) {
        for (uint32_t i = 0; i < w->n_used; i++) {
            struct conn *c = &w->conns[i];
            if (c->state != CONN_FREE)
                conn_discard(c);
        }
    }
    if (w->pipes) {
        for (uint32_t i = 0; i < w->max_pipes; i++) {
            if (w->pipes[i].r >= 0) {
                close(w->pipes[i].r);
                close(w->pipes[i].w);
            }
        }
    }
    for (int i = 0; i < w->n_listen; i++)
        if (w->listen_fd[i] >= 0)
            close(w->listen_fd[i]);
    worker_drop_update(w);
    for (int g = 0; g < WORKER_GENS; g++)
        gen_fini(&w->gens[g]);
    if (w->bufs)
        munmap(w->bufs, (size_t)w->n_bufs * BUF_STRIDE);
    lazy_free(w->conns, (size_t)w->n_conns * sizeof(*w->conns));
    lazy_free(w->free_conns, (size_t)w->n_conns * sizeof(*w->free_conns));
    lazy_free(w->starved, 2 * (size_t)w->n_conns * sizeof(*w->starved));
    free(w->pipes);
    free(w->free_pipes);
    stats_block_free(w->id);
    w->st = NULL;
    w->conns = NULL;
    w->pipes = NULL;
    w->bufs = NULL;
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

/* Each timer list holds connections with one timeout, in order of their
 * last activity, so only the heads can have expired. */
static void timers_run(struct worker *w)
{
    for (int g = 0; g < WORKER_GENS; g++) {
        struct worker_gen *gen = &w->gens[g];
        for (int k = 0; gen->rt && k < TIMER_KINDS; k++) {
            for (int o = 0; o < TIMER_OWNERS; o++) {
                struct list_head *h = &gen->timers[k][o];
                while (!list_empty(h)) {
                    struct conn *c = list_entry(h->next, struct conn, timer);
                    if (c->active_ms + gen->timeout_ms[k][o] > w->now_ms)
                        break;
                    relay_on_timeout(w, c);
                }
            }
        }
    }
}

void worker_accept_pause(struct worker *w, uint8_t reason)
{
    if (!w->accept_paused)
        w->io->accept_stop(w);
    w->accept_paused |= reason;
}

void worker_accept_resume(struct worker *w, uint8_t reason)
{
    if (!(w->accept_paused & reason))
        return;
    w->accept_paused &= (uint8_t)~reason;
    if (!w->accept_paused)
        w->io->accept_start(w);
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
    worker_accept_pause(w, ACCEPT_PAUSE_RELOAD);
    if (!w->io->accept_idle(w))
        return;
    for (int i = 0; i < u->n_close; i++)
        close(u->close_fd[i]);
    memcpy(w->listen_fd, u->listen_fd, sizeof(w->listen_fd));
    memcpy(w->listen_li, u->listen_li, sizeof(w->listen_li));
    w->n_listen = u->n_listen;
    gen_init(&w->gens[slot], u->rt); /* the update's reference becomes the generation's */
    w->cur_gen = (uint8_t)slot;
    atomic_store(&w->update, NULL);
    free(u);
    worker_accept_resume(w, ACCEPT_PAUSE_RELOAD);
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
    worker_accept_pause(w, ACCEPT_PAUSE_DRAIN);
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

static void dump_step(struct worker *w)
{
    FILE *out = atomic_exchange(&w->dump, NULL);

    if (!out)
        return;
    relay_dump_conns(w, out, DUMP_MAX);
    atomic_store(&w->dump_done, 1);
}

int worker_dump_conns(struct worker *w, FILE *out, int timeout_ms)
{    atomic_store(&w->dump_done, 0);
    atomic_store(&w->dump, out);
    for (int waited = 0; !atomic_load(&w->dump_done); waited++) {
        /* Not taken in time: take it back, unless the worker just did. */
        if (waited >= timeout_ms && atomic_exchange(&w->dump, NULL) == out)
            return -ETIMEDOUT;
        usleep(1000);
    }
    return 0;
}

void worker_tick(struct worker *w)
{
    worker_clock(w);
    if (w->now_ms < w->next_tick_ms)
        return;
    w->next_tick_ms = w->now_ms + TICK_MS;
    stat_inc(&w->st->w.heartbeat);
    timers_run(w);
    reload_step(w);
    dump_step(w);
    drain_step(w);
    if (w->n_fd_wait) /* before new clients: these came first */
        relay_fd_wait_retry(w);
    if ((w->accept_paused & ACCEPT_PAUSE_ERROR) && w->now_ms >= w->accept_resume_ms)
        worker_accept_resume(w, ACCEPT_PAUSE_ERROR);
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
