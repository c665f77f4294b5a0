/* ringrelay: parses the command line, loads the configuration, starts one
 * worker per core and turns signals into reloads, upgrades and stops. */
#include "checker.h"
#include "config.h"
#include "control.h"
#include "doctor.h"
#include "fd_budget.h"
#include "io.h"
#include "listeners.h"
#include "log.h"
#include "mainloop.h"
#include "options.h"
#include "process.h"
#include "relay.h"
#include "reload.h"
#include "resolver.h"
#include "service.h"
#include "registry.h"
#include "stats.h"
#include "stats_client.h"
#include "stats_socket.h"
#include "worker.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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

/* What the process holds apart from connections and pipes. */
static struct fd_needs fd_needs_of(const struct config *c, int n_workers, uint32_t stats_clients)
{
    uint32_t stats_sockets = (c->stats_socket[0] != 0) + (c->admin.listen.sa.sa_family != 0);
    struct fd_needs n = {.workers = (uint32_t)n_workers,
                         .stats = stats_sockets * (1 + stats_clients)};

    for (int l = 0; l < c->n_listeners; l++)
        n.binds += (uint32_t)c->listeners[l].n_bind;
    for (int b = 0; b < c->n_backends; b++)
        if (c->backends[b].health.mode != CHECK_OFF)
            n.checkers += (uint32_t)c->backends[b].n_servers;
    n.checkers = n.checkers < CHECKER_INFLIGHT_MIN   ? CHECKER_INFLIGHT_MIN
                 : n.checkers > CHECKER_INFLIGHT_MAX ? CHECKER_INFLIGHT_MAX
                                                     : n.checkers;
    return n;
}

/* Raises the open-file limit to the hard limit and shares it out (see
 * fd_budget.h); says how whenever connections or pipes got less. */
static void fit_budget(struct process *r)
{
    struct runtime *rt = r->rt;
    uint32_t asked = rt->cfg.max_connections;
    struct fd_needs needs;
    struct fd_budget b;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        rl.rlim_cur = RLIM_INFINITY;
    r->stats_clients = stats_socket_clients(rl.rlim_cur);
    needs = fd_needs_of(&rt->cfg, r->n_workers, r->stats_clients);
    fd_budget_fit(&b, rl.rlim_cur, asked, &needs);
    rt->max_connections = b.connections;
    rt->pipes_per_worker = b.pipes;
    rt->check_inflight = needs.checkers;
    if (!fd_budget_short(&b, asked) && b.pipes == FD_BUDGET_PIPES)
        return;
    log_at(fd_budget_short(&b, asked) ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
           "open-file limit %llu: room for %u connections (%s %u) = 2 x %u sockets + %u held "
           "by the process (%u workers x (1 ring + %u listening), %u health checks, stats, logs) "
           "+ %u spare + %u workers x 2 x %u splice pipes (of %u each); raise the hard limit "
           "(LimitNOFILE=, ulimit -Hn) for more",
           (unsigned long long)b.limit, b.connections, asked ? "max_connections" : "default",
           b.asked, b.connections, b.fixed, needs.workers, needs.binds, needs.checkers, b.spare,
           needs.workers, b.pipes, FD_BUDGET_PIPES);
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

/* -t or --dump-config: check the configuration file, or print it. */
static int config_command(const struct options *o)
{
    const char *path = o->config_path;
    struct config *c = calloc(1, sizeof(*c));
    char err[512];
    size_t len = 0;
    char *text = c && path ? reload_read_file(path, &len, err, sizeof(err)) : NULL;
    int ret = 2;

    if (!c)
        snprintf(err, sizeof(err), "out of memory");
    if (c && (text || !path) &&
        config_load(c, path, text, len, o->args, o->n_args, err, sizeof(err)) == 0) {
        ret = 0;
        if (o->config_dump)
            config_dump(c, stdout);
        else if (path)
            fprintf(stderr, "ringrelay: the configuration file %s syntax is ok\n", path);
        else
            fprintf(stderr, "ringrelay: the configuration the command line describes is ok\n");
    }
    if (ret)
        fprintf(stderr, "ringrelay: %s\n", err);
    if (c)
        config_free(c);
    free(text);
    free(c);
    return ret;
}

/* A random id for this process, for UNIQUE_ID TLVs; in the ready line. */
static void set_instance(struct process *r)
{
    if (getrandom(&r->instance, sizeof(r->instance), GRND_NONBLOCK) != (ssize_t)sizeof(r->instance))
        r->instance = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
    relay_set_instance(r->instance);
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

static int load_runtime(struct process *r)
{
    char err[512];

    r->dns = resolver_new();
    if (!r->dns)
        fprintf(stderr, "ringrelay: cannot set up DNS resolution: servers given by name stay "
                        "down\n");
    r->rt = reload_load_runtime(&r->opt, r->dns, &r->config_text, &r->config_len, err, sizeof(err));
    if (!r->rt) {
        fprintf(stderr, "ringrelay: %s\n", err);
        return -EINVAL;
    }
    return 0;
}

/* The command line: returns -1 to run, or the exit status of a command
 * that ends here (doctor, stats, server, --help, --version, -t, --dump-config, or
 * bad input). */
static int command(struct process *r, int argc, char **argv)
{
    char err[256];

    if (argc >= 2 && strcmp(argv[1], "doctor") == 0)
        return doctor_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "stats") == 0)
        return stats_client_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "server") == 0)
        return server_client_main(argc - 1, argv + 1);
    switch (options_parse(&r->opt, argc, argv, err, sizeof(err))) {
    case OPTIONS_RUN:
        break;
    case OPTIONS_HELP:
        options_usage(stdout);
        return 0;
    case OPTIONS_VERSION:
        printf("ringrelay %s\n", RINGRELAY_VERSION);
        return 0;
    default:
        fprintf(stderr, "ringrelay: %s\n", err);
        return 2;
    }
    if (r->opt.config_check || r->opt.config_dump)
        return config_command(&r->opt);
    return -1;
}

/* The configuration, and what the process is sized by: workers, the
 * connection budget, the io back end. Returns 0, or the exit status. */
static int prepare(struct process *r, char **argv, int *cpus, int *n_cpus)
{
    const struct config *cfg;

    if (load_runtime(r) < 0)
        return 2;
    registry_assign(r->rt);
    process_init(r, argv);
    cfg = &r->rt->cfg;
    log_level = cfg->log_level;
    warn_trust_everything(cfg);
    set_instance(r);
    signal(SIGPIPE, SIG_IGN);
    *n_cpus = usable_cpus(cpus, CPU_SETSIZE);
    r->n_workers = cfg->workers ? cfg->workers : (*n_cpus ? *n_cpus : 1);
    if (r->n_workers > STATS_MAX_WORKERS)
        r->n_workers = STATS_MAX_WORKERS;
    fit_budget(r);
    r->io = pick_backend(cfg->io);
    return r->io ? 0 : 1;
}

/* Opens the outputs, starts the workers and health checks, and says so.
 * Returns 0, -1 (failed), or the signal that came while a successor waited
 * to take over, which stops it (its sender in *from). */
static int start(struct process *r, const int *cpus, int n_cpus, pid_t *from)
{
    sem_t started;
    int failed = 0;

    sem_init(&started, 0, 0);
    listeners_inherit(r);
    failed = process_open_outputs(r) < 0 || listeners_start(r, r->io, &started, cpus, n_cpus) < 0;
    listeners_inherit_done(r);
    if (failed)
        return -1;
    for (int i = 0; i < r->n_workers; i++)
        sem_wait(&started);
    for (int i = 0; i < r->n_workers; i++)
        failed |= r->workers[i].init_result < 0;
    if (failed || !(r->checks = checker_start(r->rt)))
        return -1;
    if (r->dns && resolver_start(r->dns) < 0)
        log_error("dns: cannot start the resolver thread: names are not resolved again");
    return process_announce(r, from);
}

/* After the signal that ends it: leave and drain (SIGTERM) or not, then
 * stop and join every thread and free what the process holds. */
static void stop(struct process *r, int sig, pid_t from)
{
    if (sig == SIGTERM && process_leave(r, from) != SIGINT)
        process_drain(r);
    else if (sig != SIGTERM)
        log_info("%s: stopping", strsignal(sig));
    service_notify("STOPPING=1");
    resolver_stop(r->dns);
    checker_stop(r->checks);
    for (int i = 0; i < r->n_workers; i++)
        atomic_store(&r->workers[i].stop, 1);
    for (int i = 0; i < r->n_workers; i++)
        pthread_join(r->workers[i].thread, NULL);
    log_rl_flush(1);
    process_close_outputs(r); /* the stats thread, which reads the resolver, is gone */
    control_free_rounds(r);
    resolver_free(r->dns);
    free(r->config_text);
    process_log_totals(r);
    for (int i = 0; i < r->n_workers; i++)
        worker_fini(&r->workers[i]);
    free(r->workers);
    runtime_put(r->rt);
}

int main(int argc, char **argv)
{
    static struct process r;
    static int cpus[CPU_SETSIZE];
    int n_cpus, ret, sig;
    pid_t from = 0;

    if ((ret = command(&r, argc, argv)) >= 0)
        return ret;
    if ((ret = prepare(&r, argv, cpus, &n_cpus)) != 0)
        return ret;
    /* Workers inherit the mask; only this thread takes the signals, in
     * its one loop (mainloop.c), whatever the phase. */
    mainloop_signals(&r.sigs);
    pthread_sigmask(SIG_BLOCK, &r.sigs, NULL);
    if ((sig = start(&r, cpus, n_cpus, &from)) < 0)
        return 1;
    if (!sig)
        sig = mainloop_run(&r, PHASE_RUN, 0, NULL, &from);
    stop(&r, sig, from);
    return 0;
}
