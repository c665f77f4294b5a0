/* The running process as its main thread sees it: the configuration in
 * force, the workers, the outputs (stats socket, access log), and what a
 * stop, reload or upgrade needs. */
#ifndef RINGRELAY_PROCESS_H
#define RINGRELAY_PROCESS_H

#include "io.h"
#include "options.h"
#include "reload_queue.h"
#include "runtime.h"
#include "worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

struct control_round;

struct process {
    struct options opt;
    struct runtime *rt; /* swapped by reloads under rt_lock; the stats thread reads it */
    pthread_mutex_t rt_lock;
    atomic_uint active_total;
    struct worker *workers; /* set before workers_ready, then read by the stats thread */
    atomic_int workers_ready;
    int n_workers;
    const struct io_backend *io;
    uint64_t instance; /* random: the first part of every UNIQUE_ID */
    uint64_t start_time, start_ms;
    atomic_ullong generation, reloads, reload_failures;
    struct reload_queue reloads_q; /* what reaches the workers next: main writes, stats reads */
    uint64_t handed_ms;            /* when handed was handed over */
    int handed_late;               /* handed's wait was logged */
    char handed_what[96];          /* what handed came from, for its log lines */
    atomic_int leaving;            /* SIGTERM came: not ready, shutdown_grace runs */
    atomic_int handed_over;        /* a successor serves now: the host is ready, whatever we do */
    atomic_int draining;           /* not accepting: open connections finish */
    struct resolver *dns;          /* servers given by name; NULL if it could not be made */
    char *config_text;             /* the file the running configuration was read from */
    size_t config_len;
    sigset_t sigs;          /* what the main thread takes (mainloop_signals()) */
    struct checker *checks; /* health checks of the running configuration: a reload replaces them */
    struct stats_socket *stats;
    uint32_t stats_clients;        /* per stats listening socket, fitted to the open-file limit */
    struct control_round *orphans; /* rounds let go of that a worker may still write into */
    struct access_log *alog;
    char exe[4096]; /* the path we were started by, unresolved: an upgrade runs what it names */
    char **argv;
    pid_t predecessor; /* the process we take over from, or 0 */
    int *inherited;    /* its listening sockets, while the start takes them (-1: taken) */
    int n_inherited;
    /* The last process an upgrade started, and how it ended (a wait
     * status; -1 while it runs): for the log and the stats socket. */
    atomic_int successor, successor_wstatus;
    uint64_t watchdog_usec;                    /* systemd's WatchdogSec; 0: none */
    uint32_t tick_ms;                          /* how often the main thread wakes: a third of it */
    uint64_t watchdog_seen[STATS_MAX_WORKERS]; /* each worker's tick count at the last check */
    uint64_t watchdog_checked_ms;              /* when that was */
};

/* Fills in the clock, the binary's path and the predecessor, if any. */
void process_init(struct process *r, char **argv);

/* Opens the access log and the stats socket the configuration names,
 * then switches user if asked. Returns 0, or -1 (logged, all closed). */
int process_open_outputs(struct process *r);
void process_close_outputs(struct process *r);

/* Ready: logs it, tells systemd; a successor then waits (up to 10 s) to
 * be ready itself and asks its predecessor to drain. Returns 0, or the
 * signal that came meanwhile and ends the process (its sender in *from). */
int process_announce(struct process *r, pid_t *from);

/* The STATUS= line systemd shows. */
void process_notify_status(struct process *r, const char *state);

/* Pings systemd's watchdog, if it has one, when every worker ran a tick
 * since the last check. Call it as often as convenient: it checks at most
 * once a main-thread tick, so that workers (which tick every 100 ms) are
 * never judged over a shorter span. */
void process_watchdog(struct process *r);

/* SIGUSR2: starts the binary again as this process's successor. */
void process_upgrade(struct process *r);

/* SIGCHLD: reaps successors, logging how each ended. */
void process_reap(struct process *r);

/* SIGTERM from pid: readiness fails at once. From the successor an upgrade
 * started, it hands the admin listener over and returns; otherwise it
 * keeps accepting for shutdown_grace, so health checks and route
 * withdrawal move traffic away first. Returns 0 to go on to the drain, or
 * the signal that cut it short: SIGINT (stop now) or SIGTERM (drain now). */
int process_leave(struct process *r, pid_t from);

/* Stops accepting, lets connections finish up to drain_timeout, then
 * resets the rest. Returns early on another SIGTERM or a SIGINT. */
void process_drain(struct process *r);

/* The counters of the configuration in force, as log lines at exit. */
void process_log_totals(const struct process *r);

#endif
