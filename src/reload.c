/* SIGHUP: the configuration file read again, checked, and handed to the
 * workers; what the process is built around stays. */
#include "reload.h"

#include "checker.h"
#include "config.h"
#include "control.h"
#include "listeners.h"
#include "log.h"
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* A runtime from -c FILE (with the flags over it) or from the flags; NULL
 * with err filled. */
struct runtime *reload_load_runtime(const struct options *o, char *err, size_t errlen)
{
    struct runtime *rt = calloc(1, sizeof(*rt));
    size_t len = 0;
    char *text = NULL;

    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&rt->refs, 1);
    if ((o->config_path && !(text = reload_read_file(o->config_path, &len, err, errlen))) ||
        config_load(&rt->cfg, o->config_path, text, len, o->args, o->n_args, err, errlen) < 0) {
        free(text);
        free(rt);
        return NULL;
    }
    free(text);
    if (runtime_build(rt, err, errlen) < 0) {
        runtime_put(rt);
        return NULL;
    }
    return rt;
}

/* Servers that keep their backend's name and their address keep their
 * health across the reload, where health checks run before and after: a
 * backend whose checks are turned off starts with every server up, and one
 * whose checks are turned on waits for them. */
static void inherit_health(struct runtime *nrt, const struct runtime *old)
{
    for (int b = 0; b < nrt->cfg.n_backends; b++)
        for (int o = 0; o < old->cfg.n_backends; o++)
            if (strcmp(nrt->cfg.backends[b].name, old->cfg.backends[o].name) == 0) {
                if (nrt->cfg.backends[b].health.mode != CHECK_OFF &&
                    old->cfg.backends[o].health.mode != CHECK_OFF)
                    pool_inherit(&nrt->pools[b], &old->pools[o]);
                break;
            }
}

/* Waits up to 2 s for the workers to take their updates (each does at its
 * next tick). Returns how many have none pending. */
static int reload_wait(struct process *r)
{
    int done = 0;

    for (int tries = 0; tries < 200; tries++) {
        done = 0;
        for (int w = 0; w < r->n_workers; w++)
            done += atomic_load(&r->workers[w].update) == NULL;
        if (done == r->n_workers)
            break;
        usleep(10000);
    }
    return done;
}

static void start_only_changed(const char *key, const char *was, const char *now)
{
    log_warn("reload: %s: %s -> %s needs a restart; kept %s", key, was, now, was);
}

/* SIGHUP: re-reads the file. A bad file changes nothing; a good one goes
 * to the workers for new connections, while open ones finish on the
 * configuration they started with. What the process is built around (the
 * keys the table marks start-only) stays, each change named in the log. */
int reload_apply(struct process *r, struct checker **checks)
{
    struct worker_update **u;
    struct runtime *nrt;
    char err[512];
    int took;

    if (!r->opt.config_path) {
        log_warn("SIGHUP: started from the command line: no file to reload");
        return -1;
    }
    if (reload_wait(r) < r->n_workers) {
        log_warn("reload: workers are still on the previous one (their connections from "
                 "older reloads hold every slot); try again when those end");
        return -1;
    }
    nrt = reload_load_runtime(&r->opt, err, sizeof(err));
    if (!nrt) {
        log_error("reload: %s; keeping the running configuration", err);
        return -1;
    }
    config_keep_start_only(&nrt->cfg, &r->rt->cfg, start_only_changed);
    nrt->max_connections = r->rt->max_connections;
    nrt->pipes_per_worker = r->rt->pipes_per_worker;
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
     * takes it too) lands wholly before the new servers take health and
     * runtime state from the old, or wholly after, on the new ones. */
    pthread_mutex_lock(&r->rt_lock);
    inherit_health(nrt, r->rt);
    stats_assign(nrt);
    for (int w = 0; w < r->n_workers; w++) {
        runtime_get(nrt);
        atomic_store(&r->workers[w].update, u[w]);
    }
    free(u);
    *checks = checker_start(nrt);
    runtime_put(r->rt);
    r->rt = nrt;
    pthread_mutex_unlock(&r->rt_lock);
    control_log_kept(nrt);
    atomic_fetch_add(&r->generation, 1);
    atomic_fetch_add(&r->reloads, 1);
    log_level = nrt->cfg.log_level;
    took = reload_wait(r);
    if (took == r->n_workers)
        log_info("reload: %s applied: %d listeners, %d backends", r->opt.config_path,
                 nrt->cfg.n_listeners, nrt->cfg.n_backends);
    else
        log_warn("reload: %s applied by %d of %d workers so far; the rest follow when their "
                 "connections from older reloads end",
                 r->opt.config_path, took, r->n_workers);
    return 0;
}
