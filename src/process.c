/* The running process: its state for the stats socket, totals at exit,
 * readiness and the watchdog, draining, and the hot upgrade. */
#include "process.h"

#include "access_log.h"
#include "control.h"
#include "listeners.h"
#include "log.h"
#include "mainloop.h"
#include "mono.h"
#include "registry.h"
#include "service.h"
#include "stats.h"
#include "stats_socket.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* jemalloc's own numbers, when it is the allocator (release builds). */
extern int mallctl(const char *name, void *old, size_t *oldlen, void *new, size_t newlen)
    __attribute__((weak));

static int memory_read(uint64_t *allocated, uint64_t *resident)
{
    uint64_t epoch = 1;
    size_t len = sizeof(uint64_t), sz = sizeof(size_t);
    size_t a = 0, res = 0;

    if (!mallctl || mallctl("epoch", NULL, NULL, &epoch, len) != 0 ||
        mallctl("stats.allocated", &a, &sz, NULL, 0) != 0 ||
        mallctl("stats.resident", &res, &sz, NULL, 0) != 0)
        return 0;
    *allocated = a;
    *resident = res;
    return 1;
}

/* How a child ended, from its wait status. */
static void wait_text(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
}

/* Why the process is not ready, into why ("" when it is): /ready's answer.
 * Ready means accepting, and every listener's default backend has a
 * server that is up and has passed a health check (or has none). */
static void readiness(const struct process *r, const struct runtime *rt, char *why, size_t cap)
{
    const struct config *c = &rt->cfg;

    why[0] = '\0';
    if (atomic_load(&r->handed_over))
        return; /* the last admin clients of ours ask about the host, which the successor serves */
    if (!atomic_load(&r->workers_ready)) {
        snprintf(why, cap, "starting");
        return;
    }
    if (atomic_load(&r->draining)) {
        snprintf(why, cap, "draining");
        return;
    }
    if (atomic_load(&r->leaving)) {
        snprintf(why, cap, "leaving: shutdown_grace (still accepting, draining next)");
        return;
    }
    for (int l = 0; l < c->n_listeners; l++) {
        int b = c->listeners[l].default_index, up = 0, proven = 0;
        const struct pool *p = &rt->pools[b];

        int closed = 0; /* up, but an operator set it drain or maint */

        for (int s = 0; s < p->n && !proven; s++) {
            int u = atomic_load(&p->m[s].st->up), open = pool_admin_open(&p->m[s]);
            up |= u && open;
            closed |= u && !open;
            proven = u && open && atomic_load(&p->m[s].st->proven);
        }
        if (!proven) {
            snprintf(why, cap,
                     up       ? "starting: backend %s: no server has passed a health check yet"
                     : closed ? "backend %s: no server up and ready (the rest set to drain or "
                                "maint, or weight 0)"
                              : "backend %s: no server up",
                     c->backends[b].name);
            return;
        }
    }
}

/* The stats socket's view of the process (stats_source.fill). */
static void stats_fill(struct stats_report *rep, void *ctx)
{
    struct process *r = ctx;
    struct runtime *rt;
    int status;

    rep->n_workers = r->n_workers;
    for (int i = 0; i < r->n_workers; i++)
        stats_worker_read(i, &rep->workers[i]);
    rep->io = r->io->name;
    rep->version = RINGRELAY_VERSION;
    rep->start_time = r->start_time;
    rep->uptime_ms = mono_ms() - r->start_ms;
    rep->generation = atomic_load(&r->generation);
    rep->reloads = atomic_load(&r->reloads);
    rep->reload_failures = atomic_load(&r->reload_failures);
    rep->generation_applied = atomic_load(&r->reloads_q.applied);
    rep->reload_pending = reload_queue_pending(&r->reloads_q);
    rep->draining = atomic_load(&r->draining);
    rep->leaving = atomic_load(&r->leaving);
    rep->pid = (int)getpid();
    rep->successor = atomic_load(&r->successor);
    status = atomic_load(&r->successor_wstatus);
    if (rep->successor && status != -1)
        wait_text(status, rep->successor_end, sizeof(rep->successor_end));
    rep->have_memory = memory_read(&rep->mem_allocated, &rep->mem_resident);
    /* The slots' names and the configuration they index, as one: a reload
     * assigns the slots and swaps the configuration under this lock. */
    pthread_mutex_lock(&r->rt_lock);
    rt = r->rt;
    runtime_get(rt);
    registry_read(&rep->names);
    pthread_mutex_unlock(&r->rt_lock);
    rep->max_connections = rt->max_connections;
    readiness(r, rt, rep->not_ready, sizeof(rep->not_ready));
    for (int i = 0; i < STATS_MAX_SERVERS; i++) {
        int at = rep->names.server_index[i], b = at / CONFIG_MAX_SERVERS;
        const struct pool_member *m =
            at >= 0 && b < rt->cfg.n_backends && at % CONFIG_MAX_SERVERS < rt->pools[b].n
                ? &rt->pools[b].m[at % CONFIG_MAX_SERVERS]
                : NULL;
        rep->server_up[i] = m ? (int8_t)atomic_load(&m->st->up) : -1;
        rep->health_changes[i] = atomic_load(&server_state_of(i)->changes);
        if (!m)
            continue;
        rep->server_admin[i] = (int8_t)atomic_load(&m->st->admin);
        rep->server_weight[i] = atomic_load(&m->st->weight);
        rep->server_weight_cfg[i] = m->weight;
        snprintf(rep->server_name[i], sizeof(rep->server_name[i]), "%s", m->name);
    }
    for (int i = 0; i < STATS_MAX_LISTENERS; i++)
        rep->listener_off[i] = (int8_t)atomic_load(&listener_state_of(i)->off);
    runtime_put(rt);
    rep->n_dns = resolver_report(r->dns, rep->dns, RESOLVER_MAX_NAMES);
}

/* /ready (stats_source.ready): readiness of the running configuration. */
static void stats_ready(char *why, size_t cap, void *ctx)
{
    struct process *r = ctx;
    struct runtime *rt;

    pthread_mutex_lock(&r->rt_lock);
    rt = r->rt;
    runtime_get(rt);
    pthread_mutex_unlock(&r->rt_lock);
    readiness(r, rt, why, cap);
    runtime_put(rt);
}

/* A write command on the stats socket, or show conns (stats_source.command). */
static int stats_command(const struct admin_cmd *cmd, const char *who, FILE *out, void **round,
                         void *ctx)
{
    return cmd ? control_command(ctx, cmd, who, out, round) : control_conns(ctx, out, round);
}

static int stats_round_end(void *round, FILE *out, void *ctx)
{
    return control_round_end(ctx, round, out);
}

static void stats_round_drop(void *round, void *ctx)
{
    control_round_drop(ctx, round);
}

/* A backend as logs name it: its address when it has one server. */
static const char *backend_name(const struct runtime *rt, int b, char *buf, size_t cap)
{
    if (rt->cfg.backends[b].n_servers == 1)
        return addr_format(runtime_server_addr(rt, b, 0), buf, cap);
    snprintf(buf, cap, "%s", rt->cfg.backends[b].name);
    return buf;
}

/* The counters of the running configuration's entries, summed over
 * workers, as lines at exit. */
/* What the stop lines add up, over listeners and backends. */
struct totals {
    uint64_t acc, refused, cerr, cto, idle, resets, bytes[2];
    uint64_t hin, huntr, hto, hbad, routed, pto, retries, nosrv;
};

static void sum_listeners(const struct process *r, const struct stats_block *t, struct totals *n)
{
    const struct config *c = &r->rt->cfg;

    for (int l = 0; l < c->n_listeners; l++) {
        const struct stats_listener *sl = &t->l[r->rt->st_listener[l]];
        n->acc += stat_get(&sl->accepted);
        n->refused += stat_get(&sl->refused);
        n->idle += stat_get(&sl->ends[END_IDLE_TIMEOUT]);
        n->resets += stat_get(&sl->ends[END_CLIENT_RESET]) + stat_get(&sl->ends[END_BACKEND_RESET]);
        n->hin += stat_get(&sl->header_in);
        n->huntr += stat_get(&sl->header_untrusted);
        n->hto += stat_get(&sl->header_timeouts);
        n->hbad += stat_get(&sl->header_bad);
        n->routed += stat_get(&sl->routed);
        n->pto += stat_get(&sl->peek_timeouts);
    }
}

/* Sums the backends' and servers' counters, and names each backend that
 * seemed not to expect PROXY protocol. */
static void sum_backends(const struct process *r, const struct stats_block *t, struct totals *n)
{
    const struct config *c = &r->rt->cfg;
    char addr[ADDR_STRLEN];

    for (int b = 0; b < c->n_backends; b++) {
        const struct stats_backend *sb = &t->b[r->rt->st_backend[b]];
        uint64_t no_proxy = 0;
        n->retries += stat_get(&sb->retries);
        n->nosrv += stat_get(&sb->no_server);
        n->bytes[0] += stat_get(&sb->bytes[0]);
        n->bytes[1] += stat_get(&sb->bytes[1]);
        for (int s = 0; s < c->backends[b].n_servers; s++) {
            const struct stats_server *ss = &t->s[r->rt->st_server[b][s]];
            for (int f = 0; f < FAIL_KINDS; f++)
                *(f == FAIL_TIMEOUT ? &n->cto : &n->cerr) += stat_get(&ss->fails[f]);
            no_proxy += stat_get(&ss->no_proxy);
        }
        if (no_proxy)
            log_warn("backend %s: %llu connections where it seemed not to expect PROXY protocol",
                     backend_name(r->rt, b, addr, sizeof(addr)), (unsigned long long)no_proxy);
    }
}

void process_log_totals(const struct process *r)
{
    struct stats_block *t = malloc(sizeof(*t));
    struct totals n = {0};

    if (!t)
        return;
    stats_sum(t);
    sum_listeners(r, t, &n);
    sum_backends(r, t, &n);
    log_info("stopped: %llu connections (%llu open at exit), %llu rejected, %llu connect errors, "
             "%llu connect timeouts, %llu idle timeouts, %llu resets; %llu bytes from clients, "
             "%llu from backends",
             (unsigned long long)n.acc, (unsigned long long)stat_get(&t->w.active),
             (unsigned long long)n.refused, (unsigned long long)n.cerr, (unsigned long long)n.cto,
             (unsigned long long)n.idle, (unsigned long long)n.resets,
             (unsigned long long)n.bytes[0], (unsigned long long)n.bytes[1]);
    if (n.hin || n.huntr || n.hto || n.hbad)
        log_info("inbound PROXY headers: %llu accepted, %llu from untrusted clients refused, "
                 "%llu timed out, %llu bad",
                 (unsigned long long)n.hin, (unsigned long long)n.huntr, (unsigned long long)n.hto,
                 (unsigned long long)n.hbad);
    if (n.routed || n.pto)
        log_info("SNI routes: %llu connections routed, %llu without a whole ClientHello in time",
                 (unsigned long long)n.routed, (unsigned long long)n.pto);
    if (n.retries)
        log_info("%llu connects retried on another server", (unsigned long long)n.retries);
    if (n.nosrv)
        log_warn("%llu clients refused: no server up with room", (unsigned long long)n.nosrv);
    free(t);
}

static void log_ready(const struct process *r, const struct io_backend *io)
{
    static const char *const pp[] = {"off", "v1", "v2"};
    static const char *const pp_in[] = {"off", "v1", "v2", "any"};
    const struct config *c = &r->rt->cfg;
    const struct config_listener *l0 = &c->listeners[0];
    char line[RUNTIME_MAX_BINDS * (ADDR_STRLEN + 1)] = "", addr[ADDR_STRLEN];
    size_t n = 0;

    for (int l = 0; l < c->n_listeners; l++)
        for (int b = 0; b < c->listeners[l].n_bind; b++)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", n ? " " : "",
                                  addr_format(&c->listeners[l].bind[b].sa, addr, sizeof(addr)));
    log_info("ready: listening on %s, backend %s, proxy-protocol %s, proxy-protocol-in %s, "
             "io=%s, workers=%d, max-connections=%u, instance=%016llx",
             line, backend_name(r->rt, l0->default_index, addr, sizeof(addr)),
             pp[c->backends[l0->default_index].proxy_protocol], pp_in[l0->proxy_protocol_in],
             io->name, r->n_workers, r->rt->max_connections, (unsigned long long)r->instance);
}

/* The status line systemd shows. */
void process_notify_status(struct process *r, const char *state)
{
    service_notify("STATUS=%s: %u connections open, %d workers, io=%s, config generation %llu",
                   state, atomic_load(&r->active_total), r->n_workers, r->io->name,
                   (unsigned long long)atomic_load(&r->generation));
}

/* Pings systemd's watchdog only if every worker ran a tick since the last
 * ping: a stuck worker stops the pings, and systemd restarts the relay. */
void process_watchdog(struct process *r)
{
    uint64_t now = mono_ms();
    int stuck = -1;

    if (!r->watchdog_usec || now - r->watchdog_checked_ms < r->tick_ms * 3 / 4)
        return;
    r->watchdog_checked_ms = now;
    for (int i = 0; i < r->n_workers; i++) {
        uint64_t hb = stat_get(&r->workers[i].st->w.heartbeat);
        if (hb == r->watchdog_seen[i])
            stuck = i;
        r->watchdog_seen[i] = hb;
    }
    if (stuck < 0)
        service_notify("WATCHDOG=1");
    else
        log_rl(LOG_LEVEL_ERROR,
               "worker %d has not run its timers since the last check: "
               "not telling the watchdog we are alive",
               stuck);
}

/* SIGUSR2: starts what our start path names now (a new build installed
 * there, or a symlink switched to one), which binds beside this process and
 * then sends it SIGTERM to drain. */
void process_upgrade(struct process *r)
{
    char now[PATH_MAX];
    pid_t pid;

    if (atomic_load(&r->draining)) {
        log_warn("SIGUSR2: already stopping; no upgrade");
        return;
    }
    if (!realpath(r->exe, now))
        snprintf(now, sizeof(now), "%s", strerror(errno));
    pid = service_spawn_successor(r->exe, r->argv);
    if (pid < 0) {
        log_error("SIGUSR2: cannot start %s (%s): %s; still running", r->exe, now,
                  strerror(-(int)pid));
        return;
    }
    atomic_store(&r->successor_wstatus, -1);
    atomic_store(&r->successor, (int)pid);
    log_info("SIGUSR2: started %s (%s) as pid %d; draining once it is ready", r->exe, now,
             (int)pid);
}

/* Reaps every child (only successors are started): one that ends before it
 * took over is a failed upgrade, and this process goes on serving. */
void process_reap(struct process *r)
{
    char how[64];
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        wait_text(status, how, sizeof(how));
        if (pid == atomic_load(&r->successor))
            atomic_store(&r->successor_wstatus, status);
        if (atomic_load(&r->draining))
            log_warn("upgrade: successor %d %s after taking over", (int)pid, how);
        else
            log_error("upgrade: successor %d %s before it was ready; still serving", (int)pid, how);
    }
}

static uint32_t open_total(struct process *r)
{
    return atomic_load(&r->active_total);
}

/* Whether a SIGTERM from pid is this process's running successor taking
 * over; if so the admin listener is handed over. */
static int successor_took_over(struct process *r, pid_t from)
{
    int successor = atomic_load(&r->successor);

    if (!successor || from != successor || atomic_load(&r->successor_wstatus) != -1)
        return 0;
    log_info("SIGTERM from successor %d: it serves now; handing over the admin listener "
             "and draining without shutdown_grace",
             successor);
    atomic_store(&r->handed_over, 1);
    stats_socket_close_admin(r->stats);
    return 1;
}

int process_leave(struct process *r, pid_t from)
{
    uint32_t grace = r->rt->cfg.shutdown_grace_ms;
    int sig;

    if (successor_took_over(r, from))
        return 0;
    atomic_store(&r->leaving, 1);
    if (!grace)
        return 0;
    log_info("SIGTERM: leaving: not ready from now on, still accepting for %u ms "
             "(shutdown_grace) so health checks and routes move traffic away; then draining",
             grace);
    process_notify_status(r, "leaving");
    sig = mainloop_run(r, PHASE_LEAVE, mono_ms() + grace, NULL, &from);
    if (sig == SIGTERM && successor_took_over(r, from))
        return SIGTERM;
    if (sig) {
        log_info("%s during shutdown_grace: %s now", strsignal(sig),
                 sig == SIGTERM ? "draining" : "stopping");
        return sig;
    }
    log_info("shutdown_grace over: draining");
    return 0;
}

static int drained(struct process *r)
{
    return open_total(r) == 0;
}

/* SIGTERM: no more accepts; open connections get drain_timeout to finish,
 * then the rest are reset. A second SIGTERM or a SIGINT cuts it short. */
void process_drain(struct process *r)
{
    uint64_t deadline;
    pid_t from = 0;
    int sig;

    atomic_store(&r->draining, 1);
    service_notify("STOPPING=1");
    process_notify_status(r, "draining");
    for (int i = 0; i < r->n_workers; i++)
        atomic_store(&r->workers[i].drain, 1);
    log_info("SIGTERM: draining: no new connections; %u open get up to %u ms to finish",
             open_total(r), r->rt->cfg.drain_timeout_ms);
    deadline = mono_ms() + r->rt->cfg.drain_timeout_ms;
    /* The successor of an upgrade started before this SIGTERM tells us it
     * serves now: that hands the admin listener over, and the drain goes on. */
    while ((sig = mainloop_run(r, PHASE_DRAIN, deadline, drained, &from)) == SIGTERM &&
           successor_took_over(r, from))
        ;
    if (sig)
        log_info("%s while draining: stopping now", strsignal(sig));
    if (open_total(r) == 0) {
        log_info("drained: every connection finished");
        return;
    }
    log_warn("drain: %u connections still open: resetting them", open_total(r));
    for (int i = 0; i < r->n_workers; i++)
        atomic_store(&r->workers[i].close_all, 1);
    for (int tries = 0; tries < 100 && open_total(r) > 0; tries++)
        usleep(10000);
}

/* Opens the access log if the configuration names one. */
static int access_open(struct process *r)
{
    const struct config_access_log *a = &r->rt->cfg.access_log;
    char err[256];

    if (!a->path[0])
        return 0;
    r->alog = access_log_start(a->path, a->format, r->n_workers, r->instance, err, sizeof(err));
    if (!r->alog) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/* Opens the stats socket if the configuration names one (before the user
 * switch: its directory may be root's), and the server behind it. */
static int stats_open(struct process *r)
{
    static const struct stats_source src = {stats_fill,      stats_ready,      stats_command,
                                            stats_round_end, stats_round_drop, NULL};
    struct stats_source mine = src;
    const struct config *c = &r->rt->cfg;
    gid_t gid = (gid_t)-1;
    char err[256];

    if (!c->stats_socket[0] && !c->admin.listen.sa.sa_family)
        return 0;
    mine.ctx = r;
    if ((c->stats_socket_group[0] &&
         service_group(c->stats_socket_group, &gid, err, sizeof(err)) < 0) ||
        !(r->stats = stats_socket_open(c->stats_socket[0] ? c->stats_socket : NULL, gid,
                                       c->stats_socket_level, r->stats_clients, &mine, err,
                                       sizeof(err)))) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/* Binds the admin listener, if any, as the user the process runs as (so a
 * successor joins its SO_REUSEPORT group), and starts serving. A successor
 * listens only once it is ready to take over (process_announce). */
static int stats_serve(struct process *r)
{
    const struct config *c = &r->rt->cfg;
    struct stats_admin admin = {
        .addr = &c->admin.listen,
        .allow = c->admin.allow,
        .n_allow = c->admin.n_allow,
        .later = r->predecessor != 0,
        .fd = c->admin.listen.sa.sa_family ? listeners_take(r, &c->admin.listen) : -1};
    char err[256], addr[ADDR_STRLEN];

    if (!r->stats)
        return 0;
    if (stats_socket_serve(r->stats, c->admin.listen.sa.sa_family ? &admin : NULL, err,
                           sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    if (c->admin.listen.sa.sa_family)
        log_info("admin listener on %s: GET /ready, /metrics, /stats.json (%d allowed ranges)%s",
                 addr_format(&c->admin.listen.sa, addr, sizeof(addr)), c->admin.n_allow,
                 admin.later ? "; taking clients once ready to take over" : "");
    return 0;
}

/* Started as root with a user to run as: becomes it before opening the
 * listeners, so they belong to that user (an upgrade's successor, which
 * runs as it, can bind beside them). */
static int drop_privileges(const struct config *c)
{
    char err[256];

    if (!c->user[0]) {
        if (c->group[0]) {
            log_error("group %s: set user too (the group alone is not switched)", c->group);
            return -1;
        }
        return 0;
    }
    if (service_drop_privileges(c->user, c->group, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    log_info("running as user %s (uid %d, gid %d)", c->user, (int)getuid(), (int)getgid());
    return 0;
}

/* Tells systemd and the log that we serve; a successor also takes over as
 * the service's main process and asks its predecessor to drain. */
/* A successor waits (up to HANDOVER_WAIT_MS) until it is ready, as /ready
 * would say, before it answers on the admin listener and asks its
 * predecessor to drain: until then the predecessor, ready, answers alone,
 * so a fleet's health checks never see the upgrade. */
#define HANDOVER_WAIT_MS 10000

static int ready_now(struct process *r)
{
    char why[STATS_NOT_READY_MAX];

    readiness(r, r->rt, why, sizeof(why));
    return !why[0];
}

/* Returns 0, or the signal that came meanwhile and stops the process. */
static int hand_over(struct process *r, pid_t *from)
{
    uint64_t start = mono_ms();
    char why[STATS_NOT_READY_MAX], exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    int sig;

    exe[n > 0 ? n : 0] = '\0';
    sig = mainloop_run(r, PHASE_HANDOVER, start + HANDOVER_WAIT_MS, ready_now, from);
    if (sig) {
        log_info("upgrade: %s before taking over from pid %d; pid %d serves on", strsignal(sig),
                 (int)r->predecessor, (int)r->predecessor);
        return sig;
    }
    readiness(r, r->rt, why, sizeof(why));
    if (why[0])
        log_warn("upgrade: not ready after %u ms (%s); taking over from pid %d all the same",
                 HANDOVER_WAIT_MS, why, (int)r->predecessor);
    stats_socket_admin_listen(r->stats);
    log_info("upgrade: serving beside pid %d as %s (ringrelay %s), ready after %llu ms; "
             "asking it to drain",
             (int)r->predecessor, exe, RINGRELAY_VERSION, (unsigned long long)(mono_ms() - start));
    kill(r->predecessor, SIGTERM);
    return 0;
}

int process_announce(struct process *r, pid_t *from)
{
    atomic_store(&r->workers_ready, 1);
    log_ready(r, r->io);
    service_notify("READY=1\nMAINPID=%d", (int)getpid());
    process_notify_status(r, "running");
    return r->predecessor ? hand_over(r, from) : 0;
}

/* The path this process was started by, as given (argv[0], or the first
 * match on PATH, as the shell found it), made absolute but not resolved: an
 * upgrade runs what that path names then, through any symlink switched
 * since. /proc/self/exe (resolved now) when neither works. */
static void start_path(char *out, size_t len, const char *argv0)
{
    const char *path = getenv("PATH");
    char cwd[PATH_MAX], cand[PATH_MAX];
    ssize_t n;

    if (argv0 && strchr(argv0, '/')) {
        int w = argv0[0] == '/' || !getcwd(cwd, sizeof(cwd))
                    ? snprintf(out, len, "%s", argv0)
                    : snprintf(out, len, "%s/%s", cwd, argv0);

        if (w > 0 && (size_t)w < len)
            return;
        argv0 = NULL; /* too long to keep: the resolved path will do */
    }
    while (argv0 && argv0[0] && path && *path) {
        size_t dlen = strcspn(path, ":");
        int w = dlen ? snprintf(cand, sizeof(cand), "%.*s/%s", (int)dlen, path, argv0)
                     : snprintf(cand, sizeof(cand), "./%s", argv0);

        if (w > 0 && (size_t)w < sizeof(cand) && access(cand, X_OK) == 0) {
            start_path(out, len, cand);
            return;
        }
        path += dlen + (path[dlen] == ':');
    }
    n = readlink("/proc/self/exe", out, len - 1);
    out[n > 0 ? n : 0] = '\0';
}

void process_init(struct process *r, char **argv)
{
    pthread_mutex_init(&r->rt_lock, NULL);
    atomic_init(&r->generation, 1);
    reload_queue_init(&r->reloads_q);
    atomic_init(&r->successor, 0);
    atomic_init(&r->successor_wstatus, -1);
    r->start_time = (uint64_t)time(NULL);
    r->start_ms = mono_ms();
    r->argv = argv;
    start_path(r->exe, sizeof(r->exe), argv[0]);
    r->predecessor = service_predecessor();
    /* The main thread wakes three times per watchdog period (once a second
     * without one, and not more than five times a second). */
    r->watchdog_usec = service_watchdog_usec();
    r->tick_ms = r->watchdog_usec ? (uint32_t)(r->watchdog_usec / 3000) : 1000;
    if (r->tick_ms < 200)
        r->tick_ms = 200;
}

int process_open_outputs(struct process *r)
{
    if (access_open(r) < 0 || stats_open(r) < 0 || drop_privileges(&r->rt->cfg) < 0 ||
        stats_serve(r) < 0) {
        process_close_outputs(r);
        return -1;
    }
    return 0;
}

void process_close_outputs(struct process *r)
{
    stats_socket_stop(r->stats);
    r->stats = NULL;
    access_log_stop(r->alog);
    r->alog = NULL;
}
