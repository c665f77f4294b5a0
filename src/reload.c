/* SIGHUP: the configuration file read again, checked, and handed to the
 * workers; what the process is built around stays. */
#include "reload.h"

#include "checker.h"
#include "config.h"
#include "control.h"
#include "listeners.h"
#include "log.h"
#include "mono.h"
#include "registry.h"
#include "resolver.h"
#include "service.h"
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Reads a whole file (at most CONFIG_FILE_MAX bytes) into a NUL-terminated buffer. */
char *reload_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    size_t cap = CONFIG_FILE_MAX;
    char *buf;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(cap + 1);
    *len = buf ? fread(buf, 1, cap + 1, f) : 0;
    if (!buf || ferror(f) || *len > cap) {
        if (buf && !ferror(f))
            snprintf(err, errlen, "%s: larger than %u MiB", path, CONFIG_FILE_MAX >> 20);
        else
            snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* A runtime from text (len bytes of -c FILE, or NULL: the flags alone)
 * with the flags over it, its servers given by name made of the addresses
 * dns (if any) has for them; with sync, dns takes in the configuration's
 * names first (its thread stopped) and resolves the new ones. NULL with
 * err filled. */
static struct runtime *build(const struct options *o, struct resolver *dns, int sync,
                             const char *text, size_t len, char *err, size_t errlen)
{
    struct runtime *rt = calloc(1, sizeof(*rt));

    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&rt->refs, 1);
    if (config_load(&rt->cfg, o->config_path, text, len, o->args, o->n_args, err, errlen) < 0) {
        free(rt);
        return NULL;
    }
    if ((dns && ((sync && resolver_sync(dns, &rt->cfg, err, errlen) < 0) ||
                 resolver_expand(dns, &rt->cfg, err, errlen) < 0)) ||
        runtime_build(rt, err, errlen) < 0) {
        runtime_put(rt);
        return NULL;
    }
    return rt;
}

struct runtime *reload_load_runtime(const struct options *o, struct resolver *dns, char **text,
                                    size_t *len, char *err, size_t errlen)
{
    struct runtime *rt;

    *text = NULL;
    *len = 0;
    if (o->config_path && !(*text = reload_read_file(o->config_path, len, err, errlen)))
        return NULL;
    rt = build(o, dns, 1, *text, *len, err, errlen);
    if (!rt) {
        free(*text);
        *text = NULL;
    }
    return rt;
}

/* How many workers have taken the update last handed to them. */
static int workers_took(struct process *r)
{
    int done = 0;

    for (int w = 0; w < r->n_workers; w++)
        done += atomic_load(&r->workers[w].update) == NULL;
    return done;
}

static void start_only_changed(const char *key, const char *was, const char *now)
{
    log_warn("reload: %s: %s -> %s needs a restart; kept %s", key, was, now, was);
}

/* Hands nrt to the workers for new connections and makes it the running
 * one; open connections finish on the configuration they started with.
 * What the process is built around (the keys the table marks start-only)
 * stays, each change named in the log. what names the change in the log.
 * Returns 0, or -1 (nrt dropped) when the listeners cannot follow. */
static int swap_in(struct process *r, struct checker **checks, struct runtime *nrt,
                   const char *what)
{
    struct worker_update **u;

    config_keep_start_only(&nrt->cfg, &r->rt->cfg, start_only_changed);
    nrt->max_connections = r->rt->max_connections;
    nrt->pipes_per_worker = r->rt->pipes_per_worker;
    nrt->check_inflight = r->rt->check_inflight;
    u = calloc((size_t)r->n_workers, sizeof(struct worker_update *));
    if (!u || listeners_update(r, nrt, u) < 0) {
        if (u)
            listeners_abandon(r, u);
        free(u);
        runtime_put(nrt);
        return -1;
    }
    checker_stop(*checks);
    /* Held from here to the swap: a command on the stats socket (which
     * takes it too) lands wholly before the new servers are bound to their
     * slots' state, or wholly after, through them. */
    pthread_mutex_lock(&r->rt_lock);
    registry_assign(nrt);
    for (int w = 0; w < r->n_workers; w++) {
        runtime_get(nrt);
        atomic_store(&r->workers[w].update, u[w]);
    }
    free(u);
    *checks = checker_start(nrt);
    runtime_put(r->rt);
    r->rt = nrt;
    pthread_mutex_unlock(&r->rt_lock);
    control_log_kept(nrt, what);
    log_level = nrt->cfg.log_level;
    snprintf(r->handed_what, sizeof(r->handed_what), "%s", what);
    r->handed_ms = mono_ms();
    r->handed_late = 0;
    reload_queue_handed(&r->reloads_q, atomic_fetch_add(&r->generation, 1) + 1);
    return 0;
}

/* SIGHUP: re-reads the file. A bad file changes nothing; a good one goes
 * to the workers for new connections, while open ones finish on the
 * configuration they started with. What the process is built around (the
 * keys the table marks start-only) stays, each change named in the log. */
static int reload_apply(struct process *r, struct checker **checks)
{
    struct runtime *nrt;
    char err[512], what[CONFIG_PATH_MAX + 16], *text;
    size_t len;
    int ret = -1;

    if (!r->opt.config_path) {
        log_warn("SIGHUP: started from the command line: no file to reload");
        return -1;
    }
    resolver_stop(r->dns);
    nrt = reload_load_runtime(&r->opt, r->dns, &text, &len, err, sizeof(err));
    snprintf(what, sizeof(what), "reload: %s", r->opt.config_path);
    if (!nrt)
        log_error("reload: %s; keeping the running configuration", err);
    else if ((ret = swap_in(r, checks, nrt, what)) == 0) {
        free(r->config_text);
        r->config_text = text;
        r->config_len = len;
        text = NULL;
        atomic_fetch_add(&r->reloads, 1);
    }
    free(text);
    if (ret < 0 && r->dns) /* the names of the running configuration, again */
        (void)resolver_sync(r->dns, &r->rt->cfg, err, sizeof(err));
    if (r->dns && resolver_start(r->dns) < 0)
        log_error("dns: cannot start the resolver thread: names are no longer resolved again");
    return ret;
}

static int reload_resolved(struct process *r, struct checker **checks)
{
    struct runtime *nrt;
    char err[512];

    nrt = build(&r->opt, r->dns, 0, r->config_text, r->config_len, err, sizeof(err));
    if (!nrt) {
        log_error("dns: the servers could not follow their names: %s; keeping them as they are",
                  err);
        return -1;
    }
    return swap_in(r, checks, nrt, "dns: new addresses");
}

/* A configuration the workers cannot all take for this long is logged. */
#define HANDED_LATE_MS 1000

/* The configuration handed last, not yet taken by every worker for this
 * long: said once. */
static void handed_late(struct process *r)
{
    uint64_t gen = atomic_load(&r->reloads_q.handed);

    if (r->handed_late || mono_ms() - r->handed_ms < HANDED_LATE_MS)
        return;
    r->handed_late = 1;
    log_warn("%s: generation %llu taken by %d of %d workers so far: the others hold "
             "connections on %d older configurations; applied when one of those ends%s",
             r->handed_what, (unsigned long long)gen, workers_took(r), r->n_workers,
             WORKER_GENS - 1,
             atomic_load(&r->reloads_q.reload) ? " (a SIGHUP waits behind it)" : "");
}

/* What the queue says to do now; logs what was just applied. */
static enum reload_step next_step(struct process *r)
{
    uint64_t applied;
    enum reload_step step =
        reload_queue_next(&r->reloads_q, workers_took(r) == r->n_workers, &applied);

    if (applied)
        log_info("%s applied: %d listeners, %d backends (generation %llu)", r->handed_what,
                 r->rt->cfg.n_listeners, r->rt->cfg.n_backends, (unsigned long long)applied);
    if (step == RELOAD_WAIT)
        handed_late(r);
    return step;
}

int reload_tick(struct process *r, struct checker **checks)
{
    enum reload_step step = next_step(r);

    if (!*checks) /* a reload could not start them (out of memory): again */
        *checks = checker_start(r->rt);
    if (step == RELOAD_FILE) {
        service_notify("RELOADING=1");
        if (reload_apply(r, checks) < 0)
            atomic_fetch_add(&r->reload_failures, 1);
        service_notify("READY=1");
        process_notify_status(r, "running");
    } else if (step == RELOAD_NAMES) {
        (void)reload_resolved(r, checks);
    }
    if (step == RELOAD_FILE || step == RELOAD_NAMES)
        (void)next_step(r); /* workers idle at a tick may have taken it already */
    return atomic_load(&r->reloads_q.handed) != 0;
}
