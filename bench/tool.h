/* Helpers shared by the load tools: command lines, addresses, sockets, time,
 * limits, signals, the epoll server under sink and echo, and reading another
 * process's CPU time. */
#ifndef BENCH_TOOL_H
#define BENCH_TOOL_H

#include "pp_strip.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

struct tool_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* What an option's argument is and how it is stored in the tool's settings. */
enum tool_opt_type {
    TOOL_OPT_SECONDS, /* double, as tool_parse_seconds() reads it */
    TOOL_OPT_COUNT,   /* long in [min, max], as tool_parse_count() reads it */
    TOOL_OPT_STRING,  /* const char *, the argument itself */
    TOOL_OPT_FLAG,    /* bool, set when the option is given; no argument */
};

/* One command-line option: its names and the field it fills, by offsetof. */
struct tool_opt {
    const char *name; /* long name without "--"; NULL ends a table */
    char letter;      /* short name, or 0 for none */
    enum tool_opt_type type;
    size_t offset;
    long min, max; /* TOOL_OPT_COUNT only */
};

/* CPU time in clock ticks: of a process, read two ways (summed over its
 * live threads, /proc/PID/task/N/stat, and for the whole thread group,
 * /proc/PID/stat, which keeps the time of threads that have exited); and of
 * the whole machine (/proc/stat: every CPU busy in user, nice, system, irq,
 * softirq or steal), where no work can hide in a kernel thread. */
struct tool_cpu {
    long long tasks;
    long long group;
    long long system;
};

/* Parses "1.2.3.4:80", "[::1]:80" or "name:80". Returns 0 or -EINVAL. */
int tool_parse_addr(const char *s, struct tool_addr *a);

/* Parses a duration: "10", "10s", "1.5s", "500ms", "2m". Returns 0 or -EINVAL. */
int tool_parse_seconds(const char *s, double *out);

/* Parses a decimal count in [min, max]. Returns 0 or -EINVAL. */
int tool_parse_count(const char *s, long min, long max, long *out);

/* Parses a command line made of the options in opts (at most 15, plus -h and
 * --help, which every tool has) and one ADDR:PORT operand. Values go into
 * the fields of conf that opts point at; fields of options not given keep
 * what the caller put there. -h prints usage to stdout and exits 0.
 * Returns 0, or -1 after printing usage to stderr. */
int tool_parse_args(int argc, char **argv, const struct tool_opt *opts, void *conf,
                    const char *usage, struct tool_addr *addr);

/* Raises the open-file soft limit to the hard limit. Returns the new soft
 * limit or -errno. */
long tool_raise_nofile(void);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tool_now_ns(void);

/* The tool_now_ns() value seconds from now. */
uint64_t tool_deadline(double seconds);

/* Milliseconds from now to deadline, rounded up, as a poll() timeout: 0 once
 * the deadline has passed. */
int tool_ms_until(uint64_t deadline, uint64_t now);

/* Connects a blocking TCP socket within timeout_ms, with TCP_NODELAY set.
 * Returns the fd or -errno. */
int tool_connect(const struct tool_addr *a, int timeout_ms);

/* Connects n sockets to a one after another with tool_connect() and stores
 * them in fds[0, n). Sets *opened to how many are open; the caller closes
 * them. Returns 0 or the -errno of the connect that failed. */
int tool_connect_all(const struct tool_addr *a, int timeout_ms, int *fds, long n, long *opened);

/* For the load generators: connects n sockets as tool_connect_all() does,
 * 5 s for each, then makes each nonblocking and adds it to ep for events with
 * its index in data.u64. A failed connect is reported on stderr as
 * "NAME: connect I: why". Returns 0 or -errno. */
int tool_connect_watch(const char *name, const struct tool_addr *a, int ep, uint32_t events,
                       int *fds, long n);

/* Opens a nonblocking listening socket with SO_REUSEADDR. Returns the fd or
 * -errno. */
int tool_listen(const struct tool_addr *a);

/* Sets O_NONBLOCK. Returns 0 or -errno. */
int tool_set_nonblock(int fd);

/* Blocks SIGINT, SIGTERM and SIGUSR1 (and ignores SIGPIPE) and returns a
 * nonblocking signalfd for them, or -errno. */
int tool_signalfd(void);

/* What tool_signal_take() found pending. */
enum { TOOL_SIG_USR1 = 1, TOOL_SIG_STOP = 2 };

/* Reads every signal pending on a tool_signalfd(). Returns TOOL_SIG_USR1 if
 * SIGUSR1 was among them, TOOL_SIG_STOP if SIGTERM or SIGINT was, both or 0. */
int tool_signal_take(int sfd);

/* Reads the machine's CPU time, and pid's unless pid is 0. Returns 0 or
 * -errno. */
int tool_cpu_read(pid_t pid, struct tool_cpu *c);

/* Seconds of CPU between two readings: the larger of the two views, so a
 * thread that exited in between is not lost. */
double tool_cpu_seconds(const struct tool_cpu *before, const struct tool_cpu *after);

/* Ends a result line on stdout: " cpu_s=C", pid's CPU seconds since *before,
 * when pid is not 0 and can still be read, and " sys_cpu_s=S", the whole
 * machine's, when *before has it; then a newline; flushes. */
void tool_end_line(pid_t pid, const struct tool_cpu *before);

/* The epoll server under sink and echo. */

enum tool_watch_kind { TOOL_WATCH_LISTENER, TOOL_WATCH_SIGNAL, TOOL_WATCH_CONN };

/* What every epoll entry of a tool_server points at. A tool's connection
 * struct starts with one, in a block from malloc(). */
struct tool_watch {
    enum tool_watch_kind kind;
    int fd;
};

/* The counters sink and echo print, in that order, as
 * "accepted=A open=O hdr_v1=N hdr_v2=N hdr_none=N hdr_bad=N bytes=B errors=E". */
struct tool_stats {
    unsigned long long accepted, open;
    struct pp_counts hdr;
    unsigned long long bytes, errors;
};

/* A listener, a signalfd and any number of connections on one epoll. The
 * tool fills duration and the three callbacks and calls tool_server_serve(). */
struct tool_server {
    double duration; /* run at most this long */
    int ep;
    struct tool_watch listener, signal;
    struct tool_stats st;
    /* Makes the tool's state for an accepted fd. Returns its tool_watch (the
     * server fills it in) or NULL; the server closes fd on NULL. */
    struct tool_watch *(*conn_new)(struct tool_server *s, int fd);
    /* Handles readiness of a connection; tool_server_drop() ends it. */
    void (*conn_ready)(struct tool_server *s, struct tool_watch *w, uint32_t events);
    /* Reports the counters on SIGUSR1. */
    void (*report)(struct tool_server *s);
};

/* Raises the open-file limit, listens on a, then accepts and serves until
 * SIGTERM or SIGINT, or for s->duration, and reports the counters a last
 * time. A failure to listen is reported on stderr as "NAME: cannot listen on
 * TEXT: why", TEXT being a as the user wrote it. Returns the exit status: 0,
 * or 1 when it cannot listen. */
int tool_server_serve(struct tool_server *s, const struct tool_addr *a, const char *name,
                      const char *text);

/* Closes a connection and frees the block w starts. err is 0 or the -errno
 * that ended it; all but -EPIPE and -ECONNRESET count as errors. */
void tool_server_drop(struct tool_server *s, struct tool_watch *w, int err);

/* Writes st as one line to f and flushes it. */
void tool_stats_print(FILE *f, const struct tool_stats *st);

#endif
