/* Health check threads and passive marking. */
#include "checker.h"

#include "health.h"
#include "log.h"
#include "probe.h"
#include "stats.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct backend_checker {
    struct runtime *rt;
    int b;
    pthread_t thread;
    int running;
    struct health *state; /* per server */
    atomic_int *stop;
};

struct checker {
    atomic_int stop;
    struct backend_checker bc[CONFIG_MAX_BACKENDS];
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

/* Sleeps up to ms, waking early when asked to stop. Returns 1 to go on. */
static int nap(atomic_int *stop, uint32_t ms)
{
    while (ms && !atomic_load(stop)) {
        uint32_t step = ms < 50 ? ms : 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !atomic_load(stop);
}

/* One check of server s; updates the pool and logs a change once. */
static void check_server(struct backend_checker *bc, SSL_CTX *tls, int s)
{
    const struct config_backend *be = &bc->rt->cfg.backends[bc->b];
    struct pool_member *m = &bc->rt->pools[bc->b].m[s];
    struct health *h = &bc->state[s];
    struct probe p = {.sa = runtime_server_addr(bc->rt, bc->b, s),
                      .header = check_header(be),
                      .tls = be->health.mode == CHECK_TLS ? tls : NULL,
                      .sni = be->sni[0] ? be->sni : NULL,
                      .timeout_ms = be->health.timeout_ms};
    char why[200];
    int ok;

    if (m->unresolved || atomic_load(&m->ctl->admin) == SERVER_MAINT)
        return; /* no address yet; or maint: no checks until set ready or drain */
    p.salen = addr_len(p.sa);
    ok = probe_run(&p, why, sizeof(why));
    if (ok < 0) {
        /* Our own shortage says nothing about the server. */
        log_rl(LOG_LEVEL_WARN, "backend %s: server %s: health check %s", be->name, m->key, why);
        return;
    }
    if (h->up && !atomic_load(&m->up)) { /* taken down by connect failures */
        h->up = 0;
        h->streak = 0;
    }
    if (ok)
        atomic_store(&m->proven, 1);
    if (!health_feed(h, ok, be->health.rise, be->health.fall))
        return;
    atomic_store(&m->up, h->up);
    atomic_store(&m->fails, 0);
    stats_health_changed(bc->rt->st_server[bc->b][s]);
    if (h->up)
        log_info("backend %s: server %s is up: %u checks passed (%s)", be->name, m->key,
                 be->health.rise, why);
    else
        log_warn("backend %s: server %s is down: %u checks failed in a row, the last: %s", be->name,
                 m->key, be->health.fall, why);
}

static void *checker_main(void *arg)
{
    struct backend_checker *bc = arg;
    const struct config_backend *be = &bc->rt->cfg.backends[bc->b];
    SSL_CTX *tls = be->health.mode == CHECK_TLS ? probe_tls_context() : NULL;

    pthread_setname_np(pthread_self(), "rr-check");
    if (be->health.mode == CHECK_TLS && !tls)
        log_error("backend %s: no TLS context for health checks: checks stop", be->name);
    while (!atomic_load(bc->stop) && (tls || be->health.mode != CHECK_TLS)) {
        for (int s = 0; s < be->n_servers && !atomic_load(bc->stop); s++)
            check_server(bc, tls, s);
        if (!nap(bc->stop, be->health.interval_ms))
            break;
    }
    SSL_CTX_free(tls);
    return NULL;
}

struct checker *checker_start(struct runtime *rt)
{
    struct checker *ck = calloc(1, sizeof(*ck));

    if (!ck)
        return NULL;
    atomic_init(&ck->stop, 0);
    for (int b = 0; b < rt->cfg.n_backends; b++) {
        struct backend_checker *bc = &ck->bc[b];
        if (rt->cfg.backends[b].health.mode == CHECK_OFF)
            continue;
        bc->rt = rt;
        bc->b = b;
        bc->stop = &ck->stop;
        bc->state = calloc((size_t)rt->cfg.backends[b].n_servers + 1, sizeof(*bc->state));
        for (int s = 0; bc->state && s < rt->cfg.backends[b].n_servers; s++)
            bc->state[s].up = atomic_load(&rt->pools[b].m[s].up); /* kept by a reload */
        if (!bc->state || pthread_create(&bc->thread, NULL, checker_main, bc) != 0) {
            log_error("backend %s: cannot start its health checks", rt->cfg.backends[b].name);
            checker_stop(ck);
            return NULL;
        }
        bc->running = 1;
    }
    return ck;
}

void checker_stop(struct checker *ck)
{
    if (!ck)
        return;
    atomic_store(&ck->stop, 1);
    for (int b = 0; b < CONFIG_MAX_BACKENDS; b++) {
        if (ck->bc[b].running)
            pthread_join(ck->bc[b].thread, NULL);
        free(ck->bc[b].state);
    }
    free(ck);
}

void checker_connect_result(struct runtime *rt, int b, int s, int ok)
{
    const struct config_backend *be = &rt->cfg.backends[b];
    struct pool_member *m = &rt->pools[b].m[s];

    if (be->health.mode == CHECK_OFF)
        return;
    if (ok) {
        atomic_store_explicit(&m->fails, 0, memory_order_relaxed);
        return;
    }
    if (atomic_fetch_add(&m->fails, 1) + 1 != be->health.fall || !atomic_exchange(&m->up, 0))
        return;
    stats_health_changed(rt->st_server[b][s]);
    log_warn("backend %s: server %s is down: %u connects failed in a row; back when a "
             "check passes",
             be->name, m->key, be->health.fall);
}
