/* What the stats socket shows: a snapshot of the counters summed over
 * workers with the names of their slots and the process's state, written
 * as a table, JSON, or the Prometheus text format; and the parser of the
 * socket's requests. No I/O but the FILE the caller gives. */
#ifndef RINGRELAY_STATS_REPORT_H
#define RINGRELAY_STATS_REPORT_H

#include "registry.h"
#include "resolver.h"
#include "stats.h"

#include <stdio.h>

#define STATS_NOT_READY_MAX 128 /* why /ready fails, with its NUL */

struct stats_report {
    struct stats_block sum;
    struct registry_names names;
    int n_workers;
    struct stats_worker workers[STATS_MAX_WORKERS];
    const char *io; /* the io back end's name */
    const char *version;
    uint64_t start_time; /* seconds since the epoch */
    uint64_t uptime_ms;
    uint64_t generation; /* configurations loaded: 1, then one per reload */
    uint64_t reloads, reload_failures;
    uint64_t generation_applied; /* the newest generation every worker has taken */
    int reload_pending;          /* a configuration handed but not taken yet, or one queued */
    uint64_t stats_busy;         /* stats clients answered "busy": every slot taken */
    uint64_t admin_refused;      /* admin clients from outside admin.allow */
    uint32_t max_connections;
    int draining;
    int leaving;                         /* SIGTERM came: shutdown_grace runs, still accepting */
    char not_ready[STATS_NOT_READY_MAX]; /* why /ready fails; "": ready */
    int pid;
    int successor;          /* the pid the last upgrade started, or 0 */
    char successor_end[64]; /* how it ended: "exited with status 3"; "" while it runs */
    int have_memory;        /* jemalloc's numbers are known */
    uint64_t mem_allocated, mem_resident;
    /* Servers of the running configuration, by slot: 1 up, 0 down, -1 not in it. */
    int8_t server_up[STATS_MAX_SERVERS];
    uint64_t health_changes[STATS_MAX_SERVERS];
    /* What operators set, by slot: enum server_admin, and the weight in
     * use and as configured. */
    int8_t server_admin[STATS_MAX_SERVERS];
    uint32_t server_weight[STATS_MAX_SERVERS], server_weight_cfg[STATS_MAX_SERVERS];
    char server_name[STATS_MAX_SERVERS][CONFIG_NAME_MAX]; /* "": none */
    int8_t listener_off[STATS_MAX_LISTENERS];             /* disable listener */
    uint64_t commands, commands_refused; /* write commands done, and refused at level read */
    int n_dns;                           /* servers given by name: each name's state */
    struct resolver_stat dns[RESOLVER_MAX_NAMES];
    /* Per second, over the span since the status page's previous sample
     * (have_rates 0: no such sample yet): the status page's own. */
    int have_rates;
    double listener_rate[STATS_MAX_LISTENERS]; /* connections accepted */
    double backend_rate[STATS_MAX_BACKENDS];   /* connections given to it */
    double backend_bps[STATS_MAX_BACKENDS][2]; /* bytes from clients, from servers */
};

/* A DNS name's state as the reports spell it, by enum resolver_state. */
extern const char *const stats_dns_state[3];

/* A server's state in one word, what an operator reads first: gone (not
 * in the running configuration), maint, drain (also at weight 0), down
 * (health checks), or up. */
const char *stats_server_state(const struct stats_report *r, int slot);

void stats_report_text(const struct stats_report *r, FILE *out);
void stats_report_servers(const struct stats_report *r, FILE *out);
void stats_report_json(const struct stats_report *r, FILE *out);
void stats_report_prometheus(const struct stats_report *r, FILE *out);
/* The status page: self-contained HTML that fetches itself again every
 * two seconds. */
void stats_report_html(const struct stats_report *r, FILE *out);
/* "ready", or the one line that says why not. */
void stats_report_ready(const struct stats_report *r, FILE *out);

/* What a client of the stats socket asks for. */
enum stats_cmd {
    STATS_CMD_HELP,
    STATS_CMD_STATS,
    STATS_CMD_STATS_JSON,
    STATS_CMD_SERVERS,
    STATS_CMD_CONNS,
    STATS_CMD_METRICS,
    STATS_CMD_READY,
    STATS_CMD_WRITE,    /* set server, shutdown sessions, disable or enable listener */
    STATS_CMD_PAGE,     /* GET /: the status page */
    STATS_CMD_UNKNOWN,  /* a line command not in the list */
    STATS_CMD_NOT_FOUND /* an HTTP request for another path */
};

extern const char stats_help[];

/* What kind of request stats_request_parse() found. */
enum { STATS_LINE = 0, STATS_HTTP_GET = 1, STATS_HTTP_HEAD = 2 };

/* Parses one request: a line ("show stats json\n") or an HTTP/1.x request
 * head ("GET /metrics HTTP/1.1\r\n...\r\n\r\n", or HEAD: the same answer
 * without its body). A line whose first word is in capitals followed by a
 * target, or that holds " HTTP/", is HTTP, and its request line must be
 * exactly GET or HEAD, SP, a path, SP, HTTP/1.0 or HTTP/1.1. Returns the
 * bytes it takes, -EAGAIN when incomplete, -EPROTO when malformed (a line
 * or head over 4 KiB, any other request line, a control byte in a command
 * line but a tab). *http is STATS_LINE, STATS_HTTP_GET or STATS_HTTP_HEAD,
 * also with -EPROTO (an HTTP request gets an HTTP answer). */
int stats_request_parse(const char *buf, size_t len, enum stats_cmd *cmd, int *http);

#endif
