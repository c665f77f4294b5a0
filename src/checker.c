/* Health checks: one thread for every checked server of a configuration,
 * probing many at once in an epoll loop, each at its backend's interval;
 * and passive marking from the data path. */
#include "checker.h"

#include "check_sched.h"
#include "health.h"
#include "log.h"
#include "mono.h"
#include "probe.h"
#include "stats.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define EV_STOP UINT32_MAX
#define EVENTS 64

/* One checked server. */
struct check {
    int b, s;
    struct health h;
    struct probe_run pr;  /* while running: it does not move (the SSL points into it) */
    uint64_t deadline_ms; /* of the probe's stage, while running */
    int running;
};

struct checker {
    struct runtime *rt;
    pthread_t thread;
    int started;
    int ep, stop_fd;
    SSL_CTX *tls; /* for tls checks; NULL: none, or none could be made */
    struct check *c;
    int n;
    uint32_t *live; /* the running checks, for their deadlines */
    int n_live;
    struct check_sched sched;
};

static enum probe_header check_header(const struct config_backend *be)
{
    if (be->health.mode == CHECK_TCP)
        return PROBE_HDR_NONE;
    switch (be->proxy_protocol) {
    case PROXY_V2:
        return PROBE_HDR_LOCAL;
    case PROXY_V1:
        return PROBE_HDR_V1; /* over a probe's own connection: the relay's address */
    case PROXY_OFF:
        break;
    }
    return PROBE_HDR_NONE;
}

/* A probe's result for check c: the pool's state, logged once per change. */
static void verdict(struct checker *ck, struct check *c, int ok, const char *why)
{
    const struct config_backend *be = &ck->rt->cfg.backends[c->b];
    struct pool_member *m = &ck->rt->pools[c->b].m[c->s];
    struct health *h = &c->h;

    if (ok < 0) {
        /* Our own shortage says nothing about the server. */
        log_rl(LOG_LEVEL_WARN, "backend %s: server %s: health check %s", be->name, m->key, why);
        return;
    }
    if (h->up && !atomic_load(&m->st->up)) { /* taken down by connect failures */
        h->up = 0;
        h->streak = 0;
    }
    if (ok)
        atomic_store(&m->st->proven, 1);
    if (!health_feed(h, ok, be->health.rise, be->health.fall))
        return;
    atomic_store(&m->st->up, h->up);
    atomic_store(&m->st->fails, 0);
    server_state_changed(m->st);
    if (h->up)
        log_info("backend %s: server %s is up: %u checks passed (%s)", be->name, m->key,
                 be->health.rise, why);
    else
        log_warn("backend %s: server %s is down: %u checks failed in a row, the last: %s", be->name,
                 m->key, be->health.fall, why);
}

/* Check i's probe is over (ok as probe_run() returns): its verdict, and
 * its next time. */
static void ended(struct checker *ck, int i, int ok, const char *why, uint64_t now)
{
    struct check *c = &ck->c[i];

    if (c->running) {
        c->running = 0;
        for (int k = 0; k < ck->n_live; k++)
            if (ck->live[k] == (uint32_t)i) {
                ck->live[k] = ck->live[--ck->n_live];
                break;
            }
    }
    if (why)
        verdict(ck, c, ok, why);
    check_sched_done(&ck->sched, i, now, ck->rt->cfg.backends[c->b].health.interval_ms);
}

/* Waits for what check i's probe asks; a probe that cannot be waited for
 * ends as our own shortage. */
static void wait_for(struct checker *ck, int i, int op, uint64_t now)
{
    struct check *c = &ck->c[i];
    struct epoll_event ev = {.events = c->pr.events == POLLIN ? EPOLLIN : EPOLLOUT,
                             .data.u32 = (uint32_t)i};

    if (epoll_ctl(ck->ep, op, c->pr.fd, &ev) == -1) {
        probe_abort(&c->pr);
        ended(ck, i, -1, "not run: epoll_ctl failed", now);
    }
}

/* Starts check i: a probe of its server, unless it has no address yet or
 * is in maint (no checks until set ready or drain). */
static void start(struct checker *ck, int i, uint64_t now)
{
    struct check *c = &ck->c[i];
    const struct config_backend *be = &ck->rt->cfg.backends[c->b];
    struct pool_member *m = &ck->rt->pools[c->b].m[c->s];
    struct probe p = {.sa = runtime_server_addr(ck->rt, c->b, c->s),
                      .header = check_header(be),
                      .tls = be->health.mode == CHECK_TLS ? ck->tls : NULL,
                      .sni = be->sni[0] ? be->sni : NULL,
                      .timeout_ms = be->health.timeout_ms};
    char why[200];
    int ret;

    if (m->unresolved || atomic_load(&m->st->admin) == SERVER_MAINT ||
        (be->health.mode == CHECK_TLS && !ck->tls)) {
        ended(ck, i, 0, NULL, now);
        return;
    }
    p.salen = addr_len(p.sa);
    ret = probe_begin(&c->pr, &p, why, sizeof(why));
    if (ret != -EINPROGRESS) {
        ended(ck, i, ret, why, now);
        return;
    }
    c->running = 1;
    c->deadline_ms = now + be->health.timeout_ms;
    ck->live[ck->n_live++] = (uint32_t)i;
    wait_for(ck, i, EPOLL_CTL_ADD, now);
}

/* Check i's socket is ready: the probe's next step. */
static void step(struct checker *ck, int i, uint64_t now)
{
    struct check *c = &ck->c[i];
    enum probe_stage stage = c->pr.stage;
    char why[200];
    int ret;

    if (!c->running)
        return; /* ended earlier in this batch */
    ret = probe_step(&c->pr, why, sizeof(why));
    if (ret != -EINPROGRESS) {
        ended(ck, i, ret, why, now); /* its socket closed: out of the epoll set too */
        return;
    }
    if (c->pr.stage != stage) /* each stage has the whole timeout */
        c->deadline_ms = now + ck->rt->cfg.backends[c->b].health.timeout_ms;
    wait_for(ck, i, EPOLL_CTL_MOD, now);
}

/* Ends the probes past their stage's deadline; starts those due, up to
 * the bound. Returns the ms until either next happens (-1: none). */
static int run_due(struct checker *ck, uint64_t now)
{
    int64_t wait;
    int i;

    for (int k = 0; k < ck->n_live;) {
        struct check *c = &ck->c[ck->live[k]];
        char why[200];
        if (now < c->deadline_ms) {
            k++;
            continue;
        }
        probe_expire(&c->pr, why, sizeof(why));
        ended(ck, (int)ck->live[k], 0, why, now); /* takes it out of live */
    }
    while ((i = check_sched_next(&ck->sched, now)) >= 0)
        start(ck, i, now);
    wait = check_sched_wait(&ck->sched, now);
    for (int k = 0; k < ck->n_live; k++) {
        int64_t left = (int64_t)(ck->c[ck->live[k]].deadline_ms - now);
        if (wait < 0 || left < wait)
            wait = left;
    }
    return wait < 0 ? -1 : (int)wait;
}

static void *checker_main(void *arg)
{
    struct checker *ck = arg;
    struct epoll_event ev[EVENTS];

    pthread_setname_np(pthread_self(), "rr-check");
    for (;;) {
        int n = epoll_wait(ck->ep, ev, EVENTS, run_due(ck, mono_ms()));
        uint64_t now = mono_ms();
        if (n == -1 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++) {
            if (ev[k].data.u32 == EV_STOP)
                return NULL;
            step(ck, (int)ev[k].data.u32, now);
        }
    }
    return NULL;
}

/* The checks of rt: one per server of every backend whose mode is not
 * off, starting from the health the pool has (a reload keeps it). */
static int checks_make(struct checker *ck, struct runtime *rt)
{
    int n = 0, tls = 0;

    for (int b = 0; b < rt->cfg.n_backends; b++)
        if (rt->cfg.backends[b].health.mode != CHECK_OFF) {
            n += rt->pools[b].n;
            tls |= rt->cfg.backends[b].health.mode == CHECK_TLS;
        }
    ck->c = calloc((size_t)n + 1, sizeof(*ck->c));
    ck->live = calloc((size_t)n + 1, sizeof(*ck->live));
    if (!ck->c || !ck->live)
        return -ENOMEM;
    for (int b = 0; b < rt->cfg.n_backends; b++)
        for (int s = 0; rt->cfg.backends[b].health.mode != CHECK_OFF && s < rt->pools[b].n; s++)
            ck->c[ck->n++] =
                (struct check){.b = b, .s = s, .h.up = atomic_load(&rt->pools[b].m[s].st->up)};
    if (tls && !(ck->tls = probe_tls_context()))
        log_error("no TLS context for health checks: tls checks stop");
    return 0;
}

static void checker_free(struct checker *ck)
{
    for (int k = 0; k < ck->n_live; k++)
        probe_abort(&ck->c[ck->live[k]].pr);
    if (ck->ep >= 0)
        close(ck->ep);
    if (ck->stop_fd >= 0)
        close(ck->stop_fd);
    check_sched_fini(&ck->sched);
    SSL_CTX_free(ck->tls);
    free(ck->live);
    free(ck->c);
    free(ck);
}

struct checker *checker_start(struct runtime *rt)
{
    struct checker *ck = calloc(1, sizeof(*ck));
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_STOP};

    if (!ck)
        return NULL;
    ck->rt = rt;
    ck->ep = ck->stop_fd = -1;
    if (checks_make(ck, rt) < 0 ||
        check_sched_init(&ck->sched, ck->n, (int)rt->check_inflight, mono_ms()) < 0)
        goto fail;
    if (!ck->n)
        return ck; /* nothing to check: no thread */
    if ((ck->ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
        (ck->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1 ||
        epoll_ctl(ck->ep, EPOLL_CTL_ADD, ck->stop_fd, &ev) == -1 ||
        pthread_create(&ck->thread, NULL, checker_main, ck) != 0)
        goto fail;
    ck->started = 1;
    return ck;

fail:
    log_error("cannot start the health checks: %s", strerror(errno ? errno : ENOMEM));
    checker_free(ck);
    return NULL;
}

void checker_stop(struct checker *ck)
{
    if (!ck)
        return;
    if (ck->started) {
        /* At once: probes under way are dropped, not waited for. */
        (void)!write(ck->stop_fd, &(uint64_t){1}, sizeof(uint64_t));
        pthread_join(ck->thread, NULL);
    }
    checker_free(ck);
}

void checker_connect_result(struct runtime *rt, int b, int s, int ok)
{
    const struct config_backend *be = &rt->cfg.backends[b];
    struct pool_member *m = &rt->pools[b].m[s];

    if (be->health.mode == CHECK_OFF)
        return;
    if (ok) {
        atomic_store_explicit(&m->st->fails, 0, memory_order_relaxed);
        return;
    }
    if (atomic_fetch_add(&m->st->fails, 1) + 1 != be->health.fall ||
        !atomic_exchange(&m->st->up, 0))
        return;
    server_state_changed(m->st);
    log_warn("backend %s: server %s is down: %u connects failed in a row; back when a "
             "check passes",
             be->name, m->key, be->health.fall);
}
