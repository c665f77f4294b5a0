/* A connection as every part of the relay sees it: where its settings,
 * runtime, counters, buffers and timeouts are in its worker, and the cause
 * of its end. Inline helpers only, so every relay file may use them. */
#ifndef RINGRELAY_CONN_H
#define RINGRELAY_CONN_H

#include "relay-t.h"
#include "worker-t.h"

#include <time.h>

/* The runtime generation a connection runs on, and its configuration. */
static inline struct worker_gen *conn_gen(struct worker *w, const struct conn *c)
{
    return &w->gens[c->rgen];
}

static inline struct runtime *conn_rt(const struct worker *w, const struct conn *c)
{
    return w->gens[c->rgen].rt;
}

static inline const struct config *conn_cfg(const struct worker *w, const struct conn *c)
{
    return &w->gens[c->rgen].rt->cfg;
}

static inline const struct config_backend *conn_backend(const struct worker *w,
                                                        const struct conn *c)
{
    return &conn_cfg(w, c)->backends[c->be_index];
}

/* Where c's outbound header is built. */
static inline uint8_t *conn_hdr(struct conn *c)
{
    return c->hdr_ext ? c->hdr_ext : c->hdr;
}

/* Records why c ends; the first cause given is the one that counts. */
static inline void conn_end(struct conn *c, enum conn_end why)
{
    if (c->end == END_NONE)
        c->end = (uint8_t)why;
}

/* The setting a timer of this kind runs on: the connection's backend, or
 * for the header and peek timeouts its listener. */
static inline int timer_owner(const struct conn *c, int kind)
{
    return kind == TIMER_HEADER || kind == TIMER_PEEK ? c->li : c->be_index;
}

/* The timeout of c's timer of this kind. */
static inline uint32_t conn_timeout_ms(struct worker *w, const struct conn *c, int kind)
{
    return conn_gen(w, c)->relay.timeout_ms[kind][timer_owner(c, kind)];
}

static inline struct stats_listener *st_listener(struct worker *w, const struct conn *c)
{
    return &w->st->l[conn_rt(w, c)->st_listener[c->li]];
}

static inline struct stats_backend *st_backend(struct worker *w, const struct conn *c)
{
    return &w->st->b[conn_rt(w, c)->st_backend[c->be_index]];
}

static inline struct stats_server *st_server(struct worker *w, const struct conn *c)
{
    return &w->st->s[conn_rt(w, c)->st_server[c->be_index][c->server]];
}

/* CLOCK_MONOTONIC in microseconds: what connection timings count in. */
static inline uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Microseconds since c was accepted, at least 1 (0 means "not yet"). */
static inline uint32_t conn_elapsed(const struct conn *c)
{
    uint64_t d = mono_us() - c->start_us;

    return d == 0 ? 1 : d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static inline uint8_t *buf_data(struct worker *w, uint16_t bid)
{
    return w->pool.bufs + (size_t)bid * BUF_STRIDE;
}

/* Connection lookup for back ends packing (index, gen) in their events. */
static inline struct conn *conn_lookup(struct worker *w, uint32_t idx, uint32_t gen)
{
    struct conn *c;

    if (idx >= w->pool.n_conns)
        return NULL;
    c = &w->pool.conns[idx];
    return c->gen == gen && c->state != CONN_FREE ? c : NULL;
}

static inline uint32_t conn_index(struct worker *w, struct conn *c)
{
    return (uint32_t)(c - w->pool.conns);
}

#endif
