/* ringrelay: parses the command line, opens the listeners, starts one
 * worker per core and waits for a signal to stop. */
#include "access_log.h"
#include "addr.h"
#include "checker.h"
#include "config.h"
#include "doctor.h"
#include "io.h"
#include "log.h"
#include "options.h"
#include "relay.h"
#include "service.h"
#include "stats.h"
#include "stats_client.h"
#include "stats_socket.h"
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* File descriptors kept back from the connection budget: listeners, rings,
 * logs; each worker's pipe pool comes on top. */
#define FD_RESERVE 64

/* Opens one SO_REUSEPORT listener. Returns the fd or -errno. */
static int listen_open(const union sockaddr_inet *a)
{
    static const int one = 1;
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err;

    if (fd == -1)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        bind(fd, &a->sa, addr_len(&a->sa)) == -1 || listen(fd, 4096) == -1) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* CPUs this process may run on, in order; returns how many. */
static int usable_cpus(int *cpus, int max)
{
    cpu_set_t set;
    int n = 0;

    if (sched_getaffinity(0, sizeof(set), &set) == -1)
        return 0;
    for (int i = 0; i < CPU_SETSIZE && n < max; i++)
        if (CPU_ISSET(i, &set))
            cpus[n++] = i;
    return n;
}

/* Raises the open-file limit to the hard limit and sizes the connection
 * budget to fit: two sockets per connection. wanted 0: as many as fit, up
 * to OPTIONS_DEFAULT_CONNECTIONS, silently. */
static uint32_t fit_connections(uint32_t wanted, int n_workers)
{
    uint64_t reserve = FD_RESERVE + (uint64_t)n_workers * 2 * PIPES_PER_WORKER;
    struct rlimit rl;
    uint32_t fit;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
        return wanted ? wanted : OPTIONS_DEFAULT_CONNECTIONS;
    fit = rl.rlim_cur > 2 * reserve ? (uint32_t)((rl.rlim_cur - reserve) / 2) : 1;
    if (wanted == 0)
        return fit < OPTIONS_DEFAULT_CONNECTIONS ? fit : OPTIONS_DEFAULT_CONNECTIONS;
    if (wanted > fit) {
        log_warn("--max-connections %u needs %llu file descriptors but the limit is %llu; "
                 "using %u", wanted, (unsigned long long)(2 * (uint64_t)wanted + reserve),
                 (unsigned long long)rl.rlim_cur, fit);
        return fit;
    }
    return wanted;
}

static const struct io_backend *pick_backend(enum io_kind kind)
{
    if (kind == IO_EPOLL)
        return &io_epoll_backend;
    if (io_uring_usable())
        return &io_uring_backend;
    if (kind == IO_URING) {
        log_error("--io uring: io_uring is not available here (kernel too old, disabled by "
                  "sysctl kernel.io_uring_disabled, or blocked by seccomp); try --io epoll");
        return NULL;
    }
    log_info("io_uring is not available here; using epoll");
    return &io_epoll_backend;
}

struct relay {
    struct options opt;
    struct runtime *rt; /* swapped by reloads under rt_lock; the stats thread reads it */
    pthread_mutex_t rt_lock;
    atomic_uint active_total;
    struct worker *workers;
    int n_workers;
    const struct io_backend *io;
    uint64_t start_time, start_ms;
    atomic_ullong generation, reloads, reload_failures;
    atomic_int draining;
    struct stats_socket *stats;
    struct access_log *alog;
    char exe[4096];  /* this binary's path at start: an upgrade runs what is there now */
    char **argv;
    pid_t predecessor; /* the process we take over from, or 0 */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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

/* The stats socket's view of the process (stats_source.fill). */
static void stats_fill(struct stats_report *rep, void *ctx)
{
    struct relay *r = ctx;
    struct runtime *rt;

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
    rep->draining = atomic_load(&r->draining);
    rep->have_memory = memory_read(&rep->mem_allocated, &rep->mem_resident);
    pthread_mutex_lock(&r->rt_lock);
    rt = r->rt;
    runtime_get(rt);
    pthread_mutex_unlock(&r->rt_lock);
    rep->max_connections = rt->cfg.max_connections;
    for (int i = 0; i < STATS_MAX_SERVERS; i++) {
        int at = rep->names.server_index[i];
        rep->server_up[i] = at < 0 ? -1
                                   : (int8_t)atomic_load(&rt->pools[at / CONFIG_MAX_SERVERS]
                                                              .m[at % CONFIG_MAX_SERVERS].up);
        rep->health_changes[i] = stats_health_changes(i);
    }
    runtime_put(rt);
}

/* show conns: each worker writes its own, at its next tick. */
static void stats_conns(FILE *out, void *ctx)
{
    struct relay *r = ctx;

    for (int i = 0; i < r->n_workers; i++)
        if (worker_dump_conns(&r->workers[i], out, 1000) < 0)
            fprintf(out, "worker %d: did not answer within 1 s\n", i);
}

/* SO_REUSEPORT would let this process share a port another one (say a
 * second ringrelay) already listens on, each silently getting part of the
 * traffic. A plain bind first tells. Returns 0 or -errno. */
static int listen_probe(const union sockaddr_inet *a)
{
    static const int one = 1;
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = 0;

    if (fd == -1)
        return -errno;
    /* SO_REUSEADDR: connections in TIME_WAIT on the port are no conflict. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, &a->sa, addr_len(&a->sa)) == -1)
        err = -errno;
    close(fd);
    return err;
}

/* How a bind address is named in errors: as the flag, or the listener. */
static void bind_name(const struct config *c, int l, int b, char *buf, size_t cap)
{
    char addr[ADDR_STRLEN];

    addr_format(&c->listeners[l].bind[b].sa, addr, sizeof(addr));
    if (strcmp(c->listeners[l].name, "cli") == 0)
        snprintf(buf, cap, "--listen %s", addr);
    else
        snprintf(buf, cap, "listener %s: bind %s", c->listeners[l].name, addr);
}

/* Opens every bind of every listener for every worker before any thread
 * starts, so a bad address fails the start instead of leaving it
 * half-configured. fds[w][i] belongs to listener li[i]. */
static int open_listeners(struct relay *r, int fds[][RUNTIME_MAX_BINDS], uint8_t *li, int *n)
{
    const struct config *c = &r->rt->cfg;
    char name[ADDR_STRLEN + CONFIG_NAME_MAX + 32];
    int err;

    *n = 0;
    for (int l = 0; l < c->n_listeners; l++) {
        for (int b = 0; b < c->listeners[l].n_bind; b++) {
            li[*n] = (uint8_t)l;
            (*n)++;
            if (!r->predecessor && (err = listen_probe(&c->listeners[l].bind[b])) < 0) {
                bind_name(c, l, b, name, sizeof(name));
                log_error("%s: %s%s", name, strerror(-err),
                          err == -EADDRINUSE ? " (is another ringrelay or server running there?)"
                                             : "");
                return err;
            }
        }
    }
    for (int w = 0; w < r->n_workers; w++) {
        int i = 0;
        for (int l = 0; l < c->n_listeners; l++) {
            for (int b = 0; b < c->listeners[l].n_bind; b++, i++) {
                int fd = listen_open(&c->listeners[l].bind[b]);
                if (fd < 0) {
                    bind_name(c, l, b, name, sizeof(name));
                    log_error("%s: %s", name, strerror(-fd));
                    return fd;
                }
                fds[w][i] = fd;
            }
        }
    }
    return 0;
}

static int start_workers(struct relay *r, const struct io_backend *io, sem_t *started, const int *cpus,
                         int n_cpus)
{
    int(*fds)[RUNTIME_MAX_BINDS] = calloc((size_t)r->n_workers, sizeof(*fds));
    uint8_t li[RUNTIME_MAX_BINDS];
    int err, n = 0;

    r->workers = calloc((size_t)r->n_workers, sizeof(*r->workers));
    if (!fds || !r->workers) {
        free(fds);
        return -ENOMEM;
    }
    for (int w = 0; w < r->n_workers; w++)
        for (int i = 0; i < RUNTIME_MAX_BINDS; i++)
            fds[w][i] = -1;
    err = open_listeners(r, fds, li, &n);
    for (int w = 0; w < r->n_workers && err == 0; w++) {
        err = worker_init(&r->workers[w], w, r->rt, fds[w], li, n, &r->active_total);
        r->workers[w].alog = access_log_ring(r->alog, w);
    }
    if (err == 0) {
        for (int w = 0; w < r->n_workers && err == 0; w++)
            err = worker_start(&r->workers[w], io, n_cpus ? cpus[w % n_cpus] : -1, started);
    } else {
        for (int w = 0; w < r->n_workers; w++)
            for (int i = 0; i < RUNTIME_MAX_BINDS; i++)
                if (fds[w][i] >= 0)
                    close(fds[w][i]);
    }
    free(fds);
    return err;
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
static void log_totals(const struct relay *r)
{
    const struct config *c = &r->rt->cfg;
    struct stats_block *t = malloc(sizeof(*t));
    uint64_t acc = 0, refused = 0, cerr = 0, cto = 0, idle = 0, resets = 0, bytes[2] = {0};
    uint64_t hin = 0, huntr = 0, hto = 0, hbad = 0, routed = 0, pto = 0, retries = 0, nosrv = 0;
    char addr[ADDR_STRLEN];

    if (!t)
        return;
    stats_sum(t);
    for (int l = 0; l < c->n_listeners; l++) {
        const struct stats_listener *sl = &t->l[r->rt->st_listener[l]];
        acc += stat_get(&sl->accepted);
        refused += stat_get(&sl->refused);
        idle += stat_get(&sl->ends[END_IDLE_TIMEOUT]);
        resets += stat_get(&sl->ends[END_CLIENT_RESET]) + stat_get(&sl->ends[END_BACKEND_RESET]);
        hin += stat_get(&sl->header_in);
        huntr += stat_get(&sl->header_untrusted);
        hto += stat_get(&sl->header_timeouts);
        hbad += stat_get(&sl->header_bad);
        routed += stat_get(&sl->routed);
        pto += stat_get(&sl->peek_timeouts);
    }
    for (int b = 0; b < c->n_backends; b++) {
        const struct stats_backend *sb = &t->b[r->rt->st_backend[b]];
        uint64_t no_proxy = 0;
        retries += stat_get(&sb->retries);
        nosrv += stat_get(&sb->no_server);
        bytes[0] += stat_get(&sb->bytes[0]);
        bytes[1] += stat_get(&sb->bytes[1]);
        for (int s = 0; s < c->backends[b].n_servers; s++) {
            const struct stats_server *ss = &t->s[r->rt->st_server[b][s]];
            for (int f = 0; f < FAIL_KINDS; f++)
                *(f == FAIL_TIMEOUT ? &cto : &cerr) += stat_get(&ss->fails[f]);
            no_proxy += stat_get(&ss->no_proxy);
        }
        if (no_proxy)
            log_warn("backend %s: %llu connections where it seemed not to expect PROXY protocol",
                     backend_name(r->rt, b, addr, sizeof(addr)), (unsigned long long)no_proxy);
    }
    log_info("stopped: %llu connections (%llu open at exit), %llu rejected, %llu connect errors, "
             "%llu connect timeouts, %llu idle timeouts, %llu resets; %llu bytes from clients, "
             "%llu from backends",
             (unsigned long long)acc, (unsigned long long)stat_get(&t->w.active),
             (unsigned long long)refused, (unsigned long long)cerr, (unsigned long long)cto,
             (unsigned long long)idle, (unsigned long long)resets, (unsigned long long)bytes[0],
             (unsigned long long)bytes[1]);
    if (hin || huntr || hto || hbad)
        log_info("inbound PROXY headers: %llu accepted, %llu from untrusted clients refused, "
                 "%llu timed out, %llu bad",
                 (unsigned long long)hin, (unsigned long long)huntr, (unsigned long long)hto,
                 (unsigned long long)hbad);
    if (routed || pto)
        log_info("SNI routes: %llu connections routed, %llu without a whole ClientHello in time",
                 (unsigned long long)routed, (unsigned long long)pto);
    if (retries)
        log_info("%llu connects retried on another server", (unsigned long long)retries);
    if (nosrv)
        log_warn("%llu clients refused: no server up with room", (unsigned long long)nosrv);
    free(t);
}

/* Reads a whole file (at most 1 MiB) into a NUL-terminated buffer. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    size_t cap = 1 << 20;
    char *buf;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(cap + 1);
    *len = buf ? fread(buf, 1, cap + 1, f) : 0;
    if (!buf || ferror(f) || *len > cap) {
        snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory"
                                                   : ferror(f) ? strerror(errno)
                                                               : "larger than 1 MiB");
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* -t or --dump-config: check the configuration file, or print it. */
static int config_command(const struct options *o)
{
    const char *path = o->config_path ? o->config_path : CONFIG_DEFAULT_PATH;
    struct config *c = calloc(1, sizeof(*c));
    char err[512];
    size_t len;
    char *text = c ? read_file(path, &len, err, sizeof(err)) : NULL;
    int ret = 2;

    if (!c)
        snprintf(err, sizeof(err), "out of memory");
    if (text && config_parse(c, path, text, len, err, sizeof(err)) == 0) {
        ret = 0;
        if (o->config_dump)
            config_dump(c, stdout);
        else
            fprintf(stderr, "ringrelay: the configuration file %s syntax is ok\n", path);
    }
    if (ret)
        fprintf(stderr, "ringrelay: %s\n", err);
    free(text);
    free(c);
    return ret;
}

static uint64_t instance;

/* A random id for this process, for UNIQUE_ID TLVs; in the ready line. */
static void set_instance(void)
{
    if (getrandom(&instance, sizeof(instance), GRND_NONBLOCK) != (ssize_t)sizeof(instance))
        instance = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
    relay_set_instance(instance);
}

/* Trusting every address lets any client write its own source address. */
static void warn_trust_everything(const struct config *c)
{
    char net[CIDR_STRLEN];

    for (int l = 0; l < c->n_listeners; l++)
        for (int i = 0; i < c->listeners[l].n_trusted; i++)
            if (cidr_is_everything(&c->listeners[l].trusted[i]))
                log_warn("listener %s: trusted source %s: every client may send a PROXY header "
                         "and claim any address; list only the proxies in front of this relay",
                         c->listeners[l].name,
                         cidr_format(&c->listeners[l].trusted[i], net, sizeof(net)));
}

static void log_ready(const struct relay *r, const struct io_backend *io)
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
             io->name, r->n_workers, c->max_connections, (unsigned long long)instance);
}

/* A runtime from -c FILE (with the flags over it) or from the flags; NULL
 * with err filled. */
static struct runtime *runtime_load(const struct options *o, char *err, size_t errlen)
{
    struct runtime *rt = calloc(1, sizeof(*rt));
    size_t len;
    char *text = NULL;

    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&rt->refs, 1);
    if (!o->config_path) {
        runtime_config_from_options(&rt->cfg, o);
    } else if (!(text = read_file(o->config_path, &len, err, errlen)) ||
               config_parse(&rt->cfg, o->config_path, text, len, err, errlen) < 0 ||
               runtime_apply_options(&rt->cfg, o, err, errlen) < 0) {
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

static int load_runtime(struct relay *r)
{
    char err[512];

    r->rt = runtime_load(&r->opt, err, sizeof(err));
    if (!r->rt) {
        fprintf(stderr, "ringrelay: %s\n", err);
        return -EINVAL;
    }
    return 0;
}

/* Finds address a among rt's binds; returns its index over all listeners. */
static int bind_index(const struct config *c, const union sockaddr_inet *a)
{
    int i = 0;

    for (int l = 0; l < c->n_listeners; l++)
        for (int b = 0; b < c->listeners[l].n_bind; b++, i++)
            if (addr_len(&a->sa) == addr_len(&c->listeners[l].bind[b].sa) &&
                memcmp(a, &c->listeners[l].bind[b], addr_len(&a->sa)) == 0)
                return i;
    return -1;
}

/* Builds each worker's update for nrt: a bind that stays keeps its
 * sockets (nothing in their queues is lost), a new one is opened, a gone
 * one is closed by the worker once it stopped accepting on it. */
static int reload_updates(struct relay *r, struct runtime *nrt, struct worker_update **u)
{
    const struct config *oc = &r->rt->cfg, *nc = &nrt->cfg;
    char name[ADDR_STRLEN + CONFIG_NAME_MAX + 32];

    for (int l = 0, i = 0; l < nc->n_listeners; l++) {
        for (int b = 0; b < nc->listeners[l].n_bind; b++, i++) {
            int err;
            if (bind_index(oc, &nc->listeners[l].bind[b]) >= 0)
                continue;
            if ((err = listen_probe(&nc->listeners[l].bind[b])) < 0) {
                bind_name(nc, l, b, name, sizeof(name));
                log_error("reload: %s: %s; keeping the running configuration", name,
                          strerror(-err));
                return err;
            }
        }
    }
    for (int w = 0; w < r->n_workers; w++) {
        struct worker *wk = &r->workers[w];
        uint8_t kept[RUNTIME_MAX_BINDS] = {0};
        int i = 0;

        u[w] = calloc(1, sizeof(*u[w]));
        if (!u[w])
            return -ENOMEM;
        u[w]->rt = nrt;
        for (int l = 0; l < nc->n_listeners; l++) {
            for (int b = 0; b < nc->listeners[l].n_bind; b++, i++) {
                int old = bind_index(oc, &nc->listeners[l].bind[b]);
                int fd = old >= 0 ? wk->listen_fd[old] : listen_open(&nc->listeners[l].bind[b]);
                if (fd < 0) {
                    bind_name(nc, l, b, name, sizeof(name));
                    log_error("reload: %s: %s; keeping the running configuration", name,
                              strerror(-fd));
                    return fd;
                }
                if (old >= 0)
                    kept[old] = 1;
                u[w]->listen_fd[i] = fd;
                u[w]->listen_li[i] = (uint8_t)l;
            }
        }
        u[w]->n_listen = i;
        for (int j = 0; j < wk->n_listen; j++)
            if (!kept[j])
                u[w]->close_fd[u[w]->n_close++] = wk->listen_fd[j];
    }
    return 0;
}

/* Drops updates that were never handed over: closes the sockets opened for
 * them (not those kept from the running configuration). */
static void reload_abandon(struct relay *r, struct worker_update **u)
{
    for (int w = 0; w < r->n_workers; w++) {
        if (!u[w])
            continue;
        for (int i = 0; i < u[w]->n_listen; i++) {
            int kept = 0;
            for (int j = 0; j < r->workers[w].n_listen && !kept; j++)
                kept = u[w]->listen_fd[i] == r->workers[w].listen_fd[j];
            if (!kept)
                close(u[w]->listen_fd[i]);
        }
        free(u[w]);
    }
}

/* Waits up to 2 s for the workers to take their updates (each does at its
 * next tick). Returns how many have none pending. */
static int reload_wait(struct relay *r)
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

/* SIGHUP: re-reads the file. A bad file changes nothing; a good one goes
 * to the workers for new connections, while open ones finish on the
 * configuration they started with. */
/* Settings fixed at start (sockets opened and privileges dropped before
 * any reload): a reload keeps them, and says so if the file changed them. */
static void keep_process_settings(struct config *nc, const struct config *oc)
{
    if (strcmp(nc->stats_socket, oc->stats_socket) != 0 ||
        strcmp(nc->stats_socket_group, oc->stats_socket_group) != 0 ||
        strcmp(nc->user, oc->user) != 0 || strcmp(nc->group, oc->group) != 0)
        log_warn("reload: stats_socket, stats_socket_group, user and group take effect at the "
                 "next restart");
    memcpy(nc->stats_socket, oc->stats_socket, sizeof(nc->stats_socket));
    memcpy(nc->stats_socket_group, oc->stats_socket_group, sizeof(nc->stats_socket_group));
    memcpy(nc->user, oc->user, sizeof(nc->user));
    memcpy(nc->group, oc->group, sizeof(nc->group));
    if (strcmp(nc->access_log.path, oc->access_log.path) != 0 ||
        nc->access_log.format != oc->access_log.format)
        log_warn("reload: access_log path and format take effect at the next restart (its mode "
                 "applies now)");
    memcpy(nc->access_log.path, oc->access_log.path, sizeof(nc->access_log.path));
    nc->access_log.format = oc->access_log.format;
}

static int reload(struct relay *r, struct checker **checks)
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
    nrt = runtime_load(&r->opt, err, sizeof(err));
    if (!nrt) {
        log_error("reload: %s; keeping the running configuration", err);
        return -1;
    }
    /* What the running process is built around cannot change under it. */
    nrt->cfg.workers = r->rt->cfg.workers;
    nrt->cfg.io = r->rt->cfg.io;
    nrt->cfg.max_connections = r->rt->cfg.max_connections;
    keep_process_settings(&nrt->cfg, &r->rt->cfg);
    u = calloc((size_t)r->n_workers, sizeof(struct worker_update *));
    if (!u || reload_updates(r, nrt, u) < 0) {
        if (u)
            reload_abandon(r, u);
        free(u);
        runtime_put(nrt);
        return -1;
    }
    checker_stop(*checks);
    stats_assign(nrt);
    for (int w = 0; w < r->n_workers; w++) {
        runtime_get(nrt);
        atomic_store(&r->workers[w].update, u[w]);
    }
    free(u);
    *checks = checker_start(nrt);
    pthread_mutex_lock(&r->rt_lock);
    runtime_put(r->rt);
    r->rt = nrt;
    pthread_mutex_unlock(&r->rt_lock);
    atomic_fetch_add(&r->generation, 1);
    atomic_fetch_add(&r->reloads, 1);
    log_level = nrt->cfg.log_level;
    took = reload_wait(r);
    if (took == r->n_workers)
        log_info("reload: %s applied: %d listeners, %d backends", r->opt.config_path,
                 nrt->cfg.n_listeners, nrt->cfg.n_backends);
    else
        log_warn("reload: %s applied by %d of %d workers so far; the rest follow when their "
                 "connections from older reloads end", r->opt.config_path, took, r->n_workers);
    return 0;
}

/* The status line systemd shows. */
static void notify_status(struct relay *r, const char *state)
{
    service_notify("STATUS=%s: %u connections open, %d workers, io=%s, config generation %llu",
                   state, atomic_load(&r->active_total), r->n_workers, r->io->name,
                   (unsigned long long)atomic_load(&r->generation));
}

/* Pings systemd's watchdog only if every worker ran a tick since the last
 * ping: a stuck worker stops the pings, and systemd restarts the relay. */
static void watchdog_check(struct relay *r, uint64_t *seen)
{
    int stuck = -1;

    for (int i = 0; i < r->n_workers; i++) {
        uint64_t hb = stat_get(&r->workers[i].st->w.heartbeat);
        if (hb == seen[i])
            stuck = i;
        seen[i] = hb;
    }
    if (stuck < 0)
        service_notify("WATCHDOG=1");
    else
        log_rl(LOG_LEVEL_ERROR, "worker %d has not run its timers since the last check: "
               "not telling the watchdog we are alive", stuck);
}

/* SIGUSR2: starts the binary found at our own path again (a new build
 * installed there), which binds beside this process and then sends it
 * SIGTERM to drain. */
static void upgrade(struct relay *r)
{
    pid_t pid;

    if (atomic_load(&r->draining)) {
        log_warn("SIGUSR2: already stopping; no upgrade");
        return;
    }
    pid = service_spawn_successor(r->exe, r->argv);
    if (pid < 0)
        log_error("SIGUSR2: cannot start %s: %s; still running", r->exe, strerror(-(int)pid));
    else
        log_info("SIGUSR2: started %s as pid %d; draining once it is ready", r->exe, (int)pid);
}

/* Waits for signals and handles reloads, upgrades and the watchdog; returns
 * the signal that stops the process. */
static int run(struct relay *r, const sigset_t *sigs, struct checker **checks)
{
    uint64_t wd = service_watchdog_usec(), seen[STATS_MAX_WORKERS] = {0};
    long period_ms = wd ? (long)(wd / 3000) : 1000;
    struct timespec ts;

    if (period_ms < 200)
        period_ms = 200;
    ts.tv_sec = period_ms / 1000;
    ts.tv_nsec = period_ms % 1000 * 1000000L;
    for (;;) {
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (wd)
            watchdog_check(r, seen);
        if (sig == SIGHUP) {
            service_notify("RELOADING=1");
            if (reload(r, checks) < 0)
                atomic_fetch_add(&r->reload_failures, 1);
            service_notify("READY=1");
            notify_status(r, "running");
        } else if (sig == SIGUSR2) {
            upgrade(r);
        } else if (sig == SIGUSR1) {
            access_log_reopen(r->alog);
        } else if (sig == SIGTERM || sig == SIGINT) {
            return sig;
        }
    }
}

static uint32_t open_total(struct relay *r)
{
    return atomic_load(&r->active_total);
}

/* SIGTERM: no more accepts; open connections get drain_timeout to finish,
 * then the rest are reset. A second SIGTERM or a SIGINT cuts it short. */
static void drain(struct relay *r, const sigset_t *sigs)
{
    uint64_t deadline = mono_ms() + r->rt->cfg.drain_timeout_ms, last_status = 0;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
    int sig;

    atomic_store(&r->draining, 1);
    service_notify("STOPPING=1");
    for (int i = 0; i < r->n_workers; i++)
        atomic_store(&r->workers[i].drain, 1);
    log_info("SIGTERM: draining: no new connections; %u open get up to %u ms to finish",
             open_total(r), r->rt->cfg.drain_timeout_ms);
    while (open_total(r) > 0 && mono_ms() < deadline) {
        sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("%s while draining: stopping now", strsignal(sig));
            break;
        }
        if (mono_ms() - last_status >= 1000) {
            notify_status(r, "draining");
            last_status = mono_ms();
        }
    }
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
static int access_open(struct relay *r)
{
    const struct config_access_log *a = &r->rt->cfg.access_log;
    char err[256];

    if (!a->path[0])
        return 0;
    r->alog = access_log_start(a->path, a->format, r->n_workers, instance, err, sizeof(err));
    if (!r->alog) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/* Opens the stats socket if the configuration names one. */
static int stats_open(struct relay *r)
{
    static const struct stats_source src = {stats_fill, stats_conns, NULL};
    struct stats_source mine = src;
    const struct config *c = &r->rt->cfg;
    gid_t gid = (gid_t)-1;
    char err[256];

    if (!c->stats_socket[0])
        return 0;
    mine.ctx = r;
    if ((c->stats_socket_group[0] &&
         service_group(c->stats_socket_group, &gid, err, sizeof(err)) < 0) ||
        !(r->stats = stats_socket_start(c->stats_socket, gid, &mine, err, sizeof(err)))) {
        log_error("%s", err);
        return -1;
    }
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
static void announce(struct relay *r)
{
    log_ready(r, r->io);
    service_notify("READY=1\nMAINPID=%d", (int)getpid());
    notify_status(r, "running");
    if (r->predecessor) {
        log_info("upgrade: serving beside pid %d; asking it to drain", (int)r->predecessor);
        kill(r->predecessor, SIGTERM);
    }
}

int main(int argc, char **argv)
{
    static struct relay r;
    const struct io_backend *io;
    struct config *cfg;
    struct checker *checks;
    int cpus[CPU_SETSIZE], n_cpus, sig, failed = 0;
    char err[256];
    sigset_t sigs;
    sem_t started;
    ssize_t n;

    if (argc >= 2 && strcmp(argv[1], "doctor") == 0)
        return doctor_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "stats") == 0)
        return stats_client_main(argc - 1, argv + 1);
    switch (options_parse(&r.opt, argc, argv, err, sizeof(err))) {
    case OPTIONS_RUN:
        break;
    case OPTIONS_HELP:
        fputs(options_usage, stdout);
        return 0;
    case OPTIONS_VERSION:
        printf("ringrelay %s\n", RINGRELAY_VERSION);
        return 0;
    default:
        fprintf(stderr, "ringrelay: %s\n", err);
        return 2;
    }
    if (r.opt.config_check || r.opt.config_dump)
        return config_command(&r.opt);
    if (load_runtime(&r) < 0)
        return 2;
    stats_assign(r.rt);
    pthread_mutex_init(&r.rt_lock, NULL);
    atomic_init(&r.generation, 1);
    r.start_time = (uint64_t)time(NULL);
    r.start_ms = mono_ms();
    r.argv = argv;
    n = readlink("/proc/self/exe", r.exe, sizeof(r.exe) - 1);
    r.exe[n > 0 ? n : 0] = '\0';
    r.predecessor = service_predecessor();
    cfg = &r.rt->cfg;
    log_level = cfg->log_level;
    warn_trust_everything(cfg);
    set_instance();
    signal(SIGPIPE, SIG_IGN);
    n_cpus = usable_cpus(cpus, CPU_SETSIZE);
    r.n_workers = cfg->workers ? cfg->workers : (n_cpus ? n_cpus : 1);
    if (r.n_workers > STATS_MAX_WORKERS)
        r.n_workers = STATS_MAX_WORKERS;
    cfg->max_connections = fit_connections(cfg->max_connections, r.n_workers);
    if (cfg->max_connections < (uint32_t)r.n_workers)
        cfg->max_connections = (uint32_t)r.n_workers;
    io = r.io = pick_backend(cfg->io);
    if (!io)
        return 1;

    /* Workers inherit the mask; only this thread takes the signals. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (access_open(&r) < 0 || stats_open(&r) < 0 || drop_privileges(cfg) < 0) {
        stats_socket_stop(r.stats);
        access_log_stop(r.alog);
        return 1;
    }
    sem_init(&started, 0, 0);
    if (start_workers(&r, io, &started, cpus, n_cpus) < 0)
        return 1;
    for (int i = 0; i < r.n_workers; i++)
        sem_wait(&started);
    for (int i = 0; i < r.n_workers; i++)
        failed |= r.workers[i].init_result < 0;
    if (failed)
        return 1;
    checks = checker_start(r.rt);
    if (!checks)
        return 1;
    announce(&r);

    sig = run(&r, &sigs, &checks);
    if (sig == SIGTERM)
        drain(&r, &sigs);
    else
        log_info("%s: stopping", strsignal(sig));
    service_notify("STOPPING=1");
    checker_stop(checks);
    for (int i = 0; i < r.n_workers; i++)
        atomic_store(&r.workers[i].stop, 1);
    for (int i = 0; i < r.n_workers; i++)
        pthread_join(r.workers[i].thread, NULL);
    stats_socket_stop(r.stats);
    access_log_stop(r.alog);
    log_totals(&r);
    for (int i = 0; i < r.n_workers; i++)
        worker_fini(&r.workers[i]);
    free(r.workers);
    runtime_put(r.rt);
    return 0;
}
