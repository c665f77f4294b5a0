/* The runtime API on the running configuration. The state it sets lives
 * in the slots' state (server_state.h), so
 * every configuration that has the server or listener, older ones still
 * finishing connections included, sees it, and a reload keeps it. */
#include "control.h"

#include "log.h"
#include "mono.h"
#include "stats.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int refuse(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line, "error: ...; nothing changed". Returns -1. */
static int refuse(FILE *out, const char *fmt, ...)
{
    va_list ap;

    fputs("error: ", out);
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): a false report
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputs("; nothing changed\n", out);
    return -1;
}

static int backend_named(const struct config *c, const char *name)
{
    for (int b = 0; b < c->n_backends; b++)
        if (strcmp(c->backends[b].name, name) == 0)
            return b;
    return -1;
}

/* The server of pool p that ref names (its address as show servers
 * prints it, or its name), or -1. */
static int server_named(const struct pool *p, const char *ref, int from)
{
    for (int s = from; s < p->n; s++)
        if (strcmp(p->m[s].key, ref) == 0 || (p->m[s].name[0] && strcmp(p->m[s].name, ref) == 0))
            return s;
    return -1;
}

/* Backend and first server of cmd in rt; -1 (out written) if either is
 * unknown. A name may stand for several servers (a DNS name's
 * addresses): server_named() from *s + 1 finds the others. */
static int find_server(const struct runtime *rt, const struct admin_cmd *cmd, FILE *out, int *b,
                       int *s)
{
    *b = backend_named(&rt->cfg, cmd->backend);
    if (*b < 0)
        return refuse(out, "no backend '%s' (show stats lists them)", cmd->backend);
    *s = server_named(&rt->pools[*b], cmd->server, 0);
    if (*s < 0)
        return refuse(out, "no server '%s' in backend '%s' (show servers lists them)", cmd->server,
                      cmd->backend);
    return 0;
}

static int set_state(struct runtime *rt, const struct admin_cmd *cmd, int b, int s, const char *who,
                     FILE *out)
{
    const struct config_backend *be = &rt->cfg.backends[b];
    struct pool_member *m = &rt->pools[b].m[s];
    int was = atomic_exchange(&m->st->admin, (int)cmd->state);
    /* Out of maint, a server with health checks has to pass them again. */
    int recheck = was == SERVER_MAINT && cmd->state != SERVER_MAINT && be->health.mode != CHECK_OFF;

    if (recheck && atomic_exchange(&m->st->up, 0))
        server_state_changed(m->st);
    log_info("stats socket (%s): backend %s: server %s: state %s (was %s)%s", who, be->name, m->key,
             server_admin_name[cmd->state], server_admin_name[was],
             recheck ? "; down until its health checks pass" : "");
    fprintf(out, "ok: %s/%s state %s (was %s); %u open connections continue\n", be->name, m->key,
            server_admin_name[cmd->state], server_admin_name[was], atomic_load(&m->active));
    return 0;
}

static int set_weight(struct runtime *rt, const struct admin_cmd *cmd, int b, int s,
                      const char *who, FILE *out)
{
    const struct config_backend *be = &rt->cfg.backends[b];
    struct pool_member *m = &rt->pools[b].m[s];
    char cfg[16];
    unsigned was;

    snprintf(cfg, sizeof(cfg), "%u", m->weight);
    /* The ring's points are fixed when the pool is built. */
    if (be->balance == BALANCE_CLIENT_IP_HASH && cmd->weight && cmd->weight != m->weight)
        return refuse(out,
                      "backend '%s' balances by client_ip_hash, whose ring is built from the "
                      "configured weights: set 0 (no new connections) or %s (as configured)",
                      be->name, cfg);
    was = atomic_exchange(&m->st->weight, cmd->weight);
    m->st->weight_set = cmd->weight != m->weight;
    log_info("stats socket (%s): backend %s: server %s: weight %u (was %u, configured %u)", who,
             be->name, m->key, cmd->weight, was, m->weight);
    fprintf(out, "ok: %s/%s weight %u (was %u, configured %u)\n", be->name, m->key, cmd->weight,
            was, m->weight);
    return 0;
}

static int set_listener(struct runtime *rt, const struct admin_cmd *cmd, const char *who, FILE *out)
{
    const struct config *c = &rt->cfg;
    int off = cmd->op == ADMIN_LISTENER_DISABLE, was;

    for (int l = 0; l < c->n_listeners; l++) {
        if (strcmp(c->listeners[l].name, cmd->listener) != 0)
            continue;
        was = atomic_exchange(&listener_state_of(rt->st_listener[l])->off, off);
        log_info("stats socket (%s): listener %s %s%s", who, cmd->listener,
                 off ? "disabled: new clients are reset" : "enabled",
                 was == off ? " (it was already)" : "");
        fprintf(out, "ok: listener %s %s%s\n", cmd->listener,
                off ? "disabled: new clients are reset, open connections continue" : "enabled",
                was == off ? " (it was already)" : "");
        return 0;
    }
    return refuse(out, "no listener '%s' (show stats lists them)", cmd->listener);
}

/* Each server cmd names, from the first one s (one line each). */
static int each_server(struct runtime *rt, const struct admin_cmd *cmd, int b, int s,
                       const char *who, FILE *out)
{
    const struct pool_member *m = &rt->pools[b].m[s];
    int ret = 0;

    /* A DNS name's state holds for the addresses it gains later too. */
    if (cmd->op == ADMIN_SERVER_STATE && m->dns && strcmp(m->name, cmd->server) == 0 &&
        server_state_name_set(rt->cfg.backends[b].name, m->name, cmd->state) < 0)
        return refuse(out, "more than %d DNS names set to drain or maint", SERVER_STATE_NAMES);

    for (; s >= 0 && ret == 0; s = server_named(&rt->pools[b], cmd->server, s + 1))
        ret = cmd->op == ADMIN_SERVER_STATE ? set_state(rt, cmd, b, s, who, out)
                                            : set_weight(rt, cmd, b, s, who, out);
    return ret;
}

/* A command the workers do: its round, and what its answer needs. */
struct control_round {
    struct control_round *next; /* among the orphans */
    struct worker_round *wr;
    int conns; /* show conns; else shutdown sessions */
    uint64_t deadline_ms;
    int servers;
    char name[CONFIG_NAME_MAX + CONFIG_PATH_MAX + 10];
    char who[64];
};

/* Posts the round to every worker; 1 with *round, or -1 (out written). */
static int round_start(struct process *r, struct control_round *cr, enum worker_job_kind kind,
                       const uint8_t *slots, void **round, FILE *out)
{
    cr->deadline_ms = mono_ms() + CONTROL_ROUND_MS;
    cr->wr = worker_round_start(r->workers, r->n_workers, kind, slots);
    if (!cr->wr) {
        free(cr);
        fprintf(out, "error: out of memory; nothing changed\n");
        return -1;
    }
    *round = cr;
    return 1;
}

/* shutdown sessions: every server cmd names, as a bit of its counter
 * slot; the round resets their connections on all workers at once. */
static int shutdown_start(struct process *r, struct runtime *rt, const struct admin_cmd *cmd, int b,
                          int s, const char *who, void **round, FILE *out)
{
    struct control_round *cr = calloc(1, sizeof(*cr));
    uint8_t slots[(STATS_MAX_SERVERS + 7) / 8] = {0};

    if (!cr) {
        fprintf(out, "error: out of memory; nothing changed\n");
        return -1;
    }
    for (; s >= 0; s = server_named(&rt->pools[b], cmd->server, s + 1)) {
        int slot = rt->st_server[b][s];
        slots[slot / 8] |= (uint8_t)(1u << (slot % 8));
        if (!cr->servers++)
            snprintf(cr->name, sizeof(cr->name), "%s/%s", rt->cfg.backends[b].name,
                     rt->pools[b].m[s].key);
    }
    if (cr->servers > 1)
        snprintf(cr->name, sizeof(cr->name), "%s/%s (%d servers)", rt->cfg.backends[b].name,
                 cmd->server, cr->servers);
    snprintf(cr->who, sizeof(cr->who), "%s", who);
    return round_start(r, cr, WORKER_JOB_CLOSE, slots, round, out);
}

int control_command(struct process *r, const struct admin_cmd *cmd, const char *who, FILE *out,
                    void **round)
{
    struct runtime *rt;
    int b = -1, s = -1, ret;

    if (!atomic_load(&r->workers_ready)) {
        fprintf(out, "error: starting; nothing changed\n");
        return -1;
    }
    /* Held while the state changes: a reload binds its servers to the same
     * state under it, so none of a change is lost to one. */
    pthread_mutex_lock(&r->rt_lock);
    rt = r->rt;
    if (cmd->op == ADMIN_LISTENER_DISABLE || cmd->op == ADMIN_LISTENER_ENABLE)
        ret = set_listener(rt, cmd, who, out);
    else if ((ret = find_server(rt, cmd, out, &b, &s)) == 0)
        ret = cmd->op == ADMIN_SHUTDOWN_SESSIONS ? shutdown_start(r, rt, cmd, b, s, who, round, out)
                                                 : each_server(rt, cmd, b, s, who, out);
    pthread_mutex_unlock(&r->rt_lock);
    return ret;
}

int control_conns(struct process *r, FILE *out, void **round)
{
    struct control_round *cr;

    if (!atomic_load(&r->workers_ready)) {
        fprintf(out, "starting: no workers yet\n");
        return 0;
    }
    if (!(cr = calloc(1, sizeof(*cr)))) {
        fprintf(out, "error: out of memory\n");
        return -1;
    }
    cr->conns = 1;
    return round_start(r, cr, WORKER_JOB_CONNS, NULL, round, out);
}

/* Frees the orphans whose workers are done with them. */
static void orphans_sweep(struct process *r)
{
    struct control_round **p = &r->orphans;

    while (*p) {
        struct control_round *cr = *p;
        if (worker_round_pending(cr->wr)) {
            p = &cr->next;
            continue;
        }
        *p = cr->next;
        worker_round_free(cr->wr);
        free(cr);
    }
}

/* A round ended or given up on: freed, or kept among the orphans while
 * a worker that did not answer may still write into it. */
static void round_let_go(struct process *r, struct control_round *cr)
{
    cr->next = r->orphans;
    r->orphans = cr;
    orphans_sweep(r);
}

/* The answer of a round whose workers all answered, or some did not in
 * time (late of them). */
static int round_answer(const struct control_round *cr, int late, FILE *out)
{
    const struct worker_round *wr = cr->wr;
    long total = 0;

    for (int w = 0; w < wr->n; w++) {
        int done = atomic_load(&wr->job[w].done);
        if (cr->conns && done)
            fwrite(wr->job[w].text, 1, wr->job[w].len, out);
        else if (cr->conns)
            fprintf(out, "worker %d: did not answer within 1 s\n", w);
        else if (done)
            total += wr->job[w].count;
    }
    if (cr->conns)
        return 0;
    log_info("stats socket (%s): server %s: shutdown sessions: %ld connections reset%s", cr->who,
             cr->name, total, late ? " (some workers did not answer within 1 s)" : "");
    if (late) {
        fprintf(out, "error: %s: %ld connections reset, but %d workers did not answer within 1 s\n",
                cr->name, total, late);
        return -1;
    }
    fprintf(out, "ok: %s: %ld connections reset\n", cr->name, total);
    return 0;
}

int control_round_end(struct process *r, void *round, FILE *out)
{
    struct control_round *cr = round;
    int late = worker_round_pending(cr->wr), ret;

    if (late && mono_ms() < cr->deadline_ms)
        return -EINPROGRESS;
    ret = round_answer(cr, late, out);
    round_let_go(r, cr);
    return ret;
}

void control_round_drop(struct process *r, void *round)
{
    round_let_go(r, round);
}

void control_free_rounds(struct process *r)
{
    while (r->orphans) {
        struct control_round *cr = r->orphans;
        r->orphans = cr->next;
        worker_round_free(cr->wr);
        free(cr);
    }
}

void control_log_kept(const struct runtime *rt, const char *what)
{
    char line[1024];
    size_t n = 0;
    int kept = 0;

    line[0] = '\0';
    for (int b = 0; b < rt->cfg.n_backends; b++) {
        for (int s = 0; s < rt->pools[b].n; s++) {
            const struct pool_member *m = &rt->pools[b].m[s];
            int admin = atomic_load(&m->st->admin);
            if (admin == SERVER_READY && !m->st->weight_set)
                continue;
            kept++;
            if (n < sizeof(line) - 1)
                n += (size_t)snprintf(line + n, sizeof(line) - n, "%s %s/%s %s weight %u",
                                      kept > 1 ? "," : "", rt->cfg.backends[b].name, m->key,
                                      server_admin_name[admin], atomic_load(&m->st->weight));
        }
    }
    for (int l = 0; l < rt->cfg.n_listeners; l++) {
        if (!atomic_load(&listener_state_of(rt->st_listener[l])->off))
            continue;
        kept++;
        if (n < sizeof(line) - 1)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s listener %s disabled",
                                  kept > 1 ? "," : "", rt->cfg.listeners[l].name);
    }
    if (kept)
        log_info("%s: kept the runtime state of %d servers and listeners:%s", what, kept, line);
}
