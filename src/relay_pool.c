/* The relay's per-worker pools: connection slots, buffers, pipes, the
 * starved and descriptor-wait queues, and the timer lists. */
#include "relay_pool.h"

#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Buffers per worker: what recv() can hold at once. A direction holds one
 * only while its bytes wait to be sent, so idle connections cost none. */
#define BUFS_PER_WORKER 1024
#define FIN_TIMEOUT_MS 30000
#define PIPE_CAP (256 * 1024U)

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

int relay_pool_init(struct worker *w, uint32_t max_conns, uint32_t max_pipes,
                    atomic_uint *active_total)
{
    struct relay_pool *p = &w->pool;

    memset(p, 0, sizeof(*p));
    p->n_conns = max_conns;
    p->active_total = active_total;
    p->n_bufs = BUFS_PER_WORKER;
    p->max_pipes = max_pipes;
    /* Any worker may hold every connection, so each reserves room for all;
     * pages are touched only as slots are first used. */
    p->conns = lazy_alloc((size_t)max_conns * sizeof(*p->conns));
    p->free_conns = lazy_alloc((size_t)max_conns * sizeof(*p->free_conns));
    p->starved = lazy_alloc(2 * (size_t)max_conns * sizeof(*p->starved));
    p->pipes = calloc(p->max_pipes ? p->max_pipes : 1, sizeof(*p->pipes));
    p->free_pipes = calloc(p->max_pipes ? p->max_pipes : 1, sizeof(*p->free_pipes));
    /* mmap: page-aligned, and untouched buffers cost no memory. */
    p->bufs = mmap(NULL, (size_t)p->n_bufs * BUF_STRIDE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p->bufs == MAP_FAILED)
        p->bufs = NULL;
    if (!p->conns || !p->free_conns || !p->starved || !p->pipes || !p->free_pipes || !p->bufs)
        return -ENOMEM;
    for (uint32_t i = 0; i < p->max_pipes; i++) {
        p->pipes[i].r = p->pipes[i].w = -1;
        p->free_pipes[i] = (uint16_t)(p->max_pipes - 1 - i);
    }
    p->n_pipes_free = p->max_pipes;
    return 0;
}

void relay_pool_fini(struct worker *w)
{
    struct relay_pool *p = &w->pool;

    for (uint32_t i = 0; p->conns && i < p->n_used; i++)
        if (p->conns[i].state != CONN_FREE)
            conn_discard(&p->conns[i]);
    for (uint32_t i = 0; p->pipes && i < p->max_pipes; i++) {
        if (p->pipes[i].r >= 0) {
            close(p->pipes[i].r);
            close(p->pipes[i].w);
        }
    }
    if (p->bufs)
        munmap(p->bufs, (size_t)p->n_bufs * BUF_STRIDE);
    lazy_free(p->conns, (size_t)p->n_conns * sizeof(*p->conns));
    lazy_free(p->free_conns, (size_t)p->n_conns * sizeof(*p->free_conns));
    lazy_free(p->starved, 2 * (size_t)p->n_conns * sizeof(*p->starved));
    free(p->pipes);
    free(p->free_pipes);
    p->conns = NULL;
    p->free_conns = NULL;
    p->starved = NULL;
    p->pipes = NULL;
    p->free_pipes = NULL;
    p->bufs = NULL;
}

void relay_gen_init(struct relay_gen *g, const struct runtime *rt)
{
    const struct config *c = &rt->cfg;

    memset(g, 0, sizeof(*g));
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

void relay_gen_fini(struct relay_gen *g, const struct runtime *rt)
{
    for (int b = 0; b < rt->cfg.n_backends; b++)
        pool_rr_fini(&g->rr[b]);
}

/* Counts a new connection against --max-connections over all workers.
 * Returns 0, or -1 when all slots are taken. */
static int slot_room(struct relay_pool *p)
{
    int room = p->n_free > 0 || p->n_used < p->n_conns;

    if (!room ||
        atomic_fetch_add_explicit(p->active_total, 1, memory_order_relaxed) >= p->n_conns) {
        if (room)
            atomic_fetch_sub_explicit(p->active_total, 1, memory_order_relaxed);
        return -1;
    }
    return 0;
}

struct conn *conn_alloc(struct worker *w)
{
    struct relay_pool *p = &w->pool;
    struct conn *c;
    uint32_t gen;

    if (slot_room(p) < 0)
        return NULL;
    /* A freed slot (still in cache) before a fresh one (a page to touch). */
    c = &p->conns[p->n_free ? p->free_conns[--p->n_free] : p->n_used++];
    gen = c->gen;
    memset(c, 0, sizeof(*c));
    c->gen = gen;
    c->state = CONN_CONNECTING;
    c->id = ++p->next_id;
    c->fd[0] = c->fd[1] = -1;
    for (int d = 0; d < 2; d++) {
        c->dir[d].buf = BUF_NONE;
        c->dir[d].pipe = -1;
    }
    c->timer_kind = TIMER_NONE;
    c->server = -1;
    c->rgen = w->cur_gen;
    w->gens[c->rgen].conns++;
    list_init(&c->timer);
    c->start_us = mono_us();
    stat_inc(&w->st->w.active);
    return c;
}

void conn_discard(struct conn *c)
{
    for (int s = 0; s < 2; s++) {
        if (c->fd[s] >= 0)
            close(c->fd[s]);
        c->fd[s] = -1;
    }
    free(c->hdr_in);
    c->hdr_in = NULL;
    free(c->hdr_ext);
    c->hdr_ext = NULL;
    free(c->extra);
    c->extra = NULL;
}

void conn_slot_put(struct worker *w, struct conn *c)
{
    struct relay_pool *p = &w->pool;

    w->gens[c->rgen].conns--;
    c->state = CONN_FREE;
    c->gen++;
    p->free_conns[p->n_free++] = conn_index(w, c);
    stat_dec(&w->st->w.active);
    atomic_fetch_sub_explicit(p->active_total, 1, memory_order_relaxed);
}

void timer_set(struct worker *w, struct conn *c, enum timer_kind kind)
{
    struct relay_gen *g = &conn_gen(w, c)->relay;

    list_del(&c->timer);
    c->timer_kind = (uint8_t)kind;
    c->active_ms = w->now_ms;
    if (kind != TIMER_NONE && g->timeout_ms[kind][timer_owner(c, kind)])
        list_add_tail(&g->timers[kind][timer_owner(c, kind)], &c->timer);
}

/* Only the idle and fin timers restart on activity, at most once a second
 * so the data path rarely touches the list. */
void conn_touch(struct worker *w, struct conn *c)
{
    int k = c->timer_kind;

    if ((k == TIMER_IDLE || k == TIMER_FIN) &&
        c->active_ms + conn_gen(w, c)->relay.touch_ms[k][timer_owner(c, k)] <= w->now_ms)
        timer_set(w, c, (enum timer_kind)k);
}

struct conn *timer_expired(struct worker *w, int g, int kind, int owner)
{
    struct relay_gen *rg = &w->gens[g].relay;
    struct list_head *h = &rg->timers[kind][owner];
    struct conn *c;

    if (list_empty(h))
        return NULL;
    c = list_entry(h->next, struct conn, timer);
    return c->active_ms + rg->timeout_ms[kind][owner] > w->now_ms ? NULL : c;
}

struct conn *buf_put(struct worker *w, uint16_t bid, int *d)
{
    struct relay_pool *p = &w->pool;
    struct conn *c;
    uint32_t v;

    w->io->buf_put(w, bid);
    if (!p->n_starved)
        return NULL;
    v = p->starved[--p->n_starved];
    c = &p->conns[v >> 1];
    *d = (int)(v & 1);
    c->dir[*d].flags &= (uint8_t)~DIR_STARVED;
    return c;
}

/* Each starved direction has exactly one entry (unstarve() removes it on
 * close), so the queue never holds more than 2 * n_conns. */
void starve(struct worker *w, struct conn *c, int d)
{
    c->dir[d].flags |= DIR_STARVED;
    w->pool.starved[w->pool.n_starved++] = conn_index(w, c) << 1 | (uint32_t)d;
}

/* Rare (a starved connection closing), so a linear scan is fine. */
void unstarve(struct worker *w, struct conn *c, int d)
{
    struct relay_pool *p = &w->pool;
    uint32_t v = conn_index(w, c) << 1 | (uint32_t)d;

    if (!(c->dir[d].flags & DIR_STARVED))
        return;
    c->dir[d].flags &= (uint8_t)~DIR_STARVED;
    for (uint32_t i = 0; i < p->n_starved; i++) {
        if (p->starved[i] == v) {
            p->starved[i] = p->starved[--p->n_starved];
            return;
        }
    }
}

int pipe_get(struct worker *w, struct dir *dir)
{
    struct relay_pool *pl = &w->pool;
    struct pipe_pair *p;
    int fds[2];

    if (pl->n_pipes_free == 0) {
        stat_inc(&w->st->w.pipes_exhausted);
        return -ENOSPC;
    }
    p = &pl->pipes[pl->free_pipes[pl->n_pipes_free - 1]];
    if (p->r < 0) {
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
            return -errno;
        /* A larger pipe means fewer splice calls per byte; the kernel may
         * refuse (pipe-user-pages-soft) and the default still works. */
        (void)fcntl(fds[0], F_SETPIPE_SZ, PIPE_CAP);
        p->r = fds[0];
        p->w = fds[1];
        p->cap = (uint32_t)fcntl(fds[0], F_GETPIPE_SZ);
    }
    dir->pipe = (int16_t)pl->free_pipes[--pl->n_pipes_free];
    stat_inc(&w->st->w.pipes_in_use);
    return 0;
}

/* A pipe with bytes nobody will read is closed rather than drained, and
 * made anew when next taken. */
void pipe_release(struct worker *w, struct dir *dir)
{
    struct relay_pool *pl = &w->pool;
    struct pipe_pair *p;

    if (dir->pipe < 0)
        return;
    p = &pl->pipes[dir->pipe];
    if (dir->in_pipe) {
        close(p->r);
        close(p->w);
        p->r = p->w = -1;
    }
    pl->free_pipes[pl->n_pipes_free++] = (uint16_t)dir->pipe;
    stat_dec(&w->st->w.pipes_in_use);
    dir->pipe = -1;
    dir->in_pipe = 0;
}

int fd_wait_add(struct worker *w, struct conn *c)
{
    struct relay_pool *p = &w->pool;

    if (p->n_fd_wait == FD_WAIT_MAX)
        return -ENOSPC;
    p->fd_wait[p->n_fd_wait++] = (struct fd_waiter){conn_index(w, c), c->gen};
    return 0;
}

uint32_t fd_wait_take(struct worker *w, struct fd_waiter *out)
{
    uint32_t n = w->pool.n_fd_wait;

    memcpy(out, w->pool.fd_wait, n * sizeof(*out));
    w->pool.n_fd_wait = 0;
    return n;
}

void fd_wait_requeue(struct worker *w, const struct fd_waiter *waiting, uint32_t n)
{
    for (uint32_t i = 0; i < n && w->pool.n_fd_wait < FD_WAIT_MAX; i++)
        w->pool.fd_wait[w->pool.n_fd_wait++] = waiting[i];
}
