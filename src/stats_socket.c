/* The stats socket's thread: epoll over the listening sockets (the unix
 * one and the admin listener) and their clients, each bounded in time and
 * in what it holds; answers are built whole, then written as the client
 * takes them. A probe is never turned away: a full table makes room by
 * closing its oldest client, and /ready is answered before other work. */
#include "stats_socket.h"

#include "admin_cmd.h"
#include "log.h"
#include "mono.h"
#include "syserr.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_MS 2000      /* from accept to a whole request */
#define ANSWER_IDLE_MS 2000  /* a reader that takes none of its answer for this long is closed */
#define PENDING_MS 30000     /* a whole request waiting behind others for its answer */
#define HELD_MAX (64u << 20) /* answer bytes held for readers, all clients together */
#define REQUEST_BUF 4096
#define ACCEPT_BACKOFF_MS 200 /* after accept failed for want of a descriptor */
#define BATCH 64              /* events taken per wait, and clients accepted per round */
#define ANSWERS_PER_ROUND 4   /* whole reports built between two waits: accepts and probes first */
#define LISTEN_BACKLOG 511
#define STATS_THREAD_NICE 10
#define WAKE_STOP 's'
#define WAKE_ADMIN_LISTEN 'l'
#define WAKE_ADMIN_CLOSE 'a'

enum { LISTEN_UNIX, LISTEN_ADMIN, LISTENS };

/* epoll's data for what is not a client: client slots are 0 to
 * s->n_clients - 1. */
#define EV_WAKE (1u << 30)
#define EV_LISTEN (EV_WAKE + 1) /* + LISTEN_* */

struct client {
    int fd;               /* -1: free */
    int admin;            /* from the admin listener: HTTP only */
    int pending;          /* the request is whole; answered after this batch's probes */
    char who[48];         /* "uid=N pid=N" of a unix socket client (SO_PEERCRED) */
    uint64_t since_ms;    /* accepted: the oldest makes room when the table is full */
    uint64_t deadline_ms; /* closed then: the request's, or the answer's next progress */
    char in[REQUEST_BUF];
    size_t in_len;
    /* The answer while it is made: its body, and for command lines the
     * next one to do; a command waiting for the workers holds round. */
    FILE *ans;
    char *body;
    size_t body_len, line_off;
    int http, bad; /* how the request came: STATS_HTTP_*; it was malformed */
    const char *type, *status;
    void *round;
    int round_writes; /* the round is a write command's: counted when it ends well */
    char *out;        /* the whole answer, once made */
    size_t out_len, out_off;
};

/* The status page's rates: the counters they are made from at the last
 * sample, and what they gave. */
struct page_rates {
    uint64_t at_ms; /* 0: no sample yet */
    uint64_t accepted[STATS_MAX_LISTENERS], conns[STATS_MAX_BACKENDS];
    uint64_t bytes[STATS_MAX_BACKENDS][2];
    int have;
    double listener[STATS_MAX_LISTENERS], backend[STATS_MAX_BACKENDS];
    double bps[STATS_MAX_BACKENDS][2];
};

struct stats_socket {
    int fd[LISTENS]; /* listening and served; -1: not (yet) */
    int admin_fd;    /* the admin socket, bound, listening or not; -1: none */
    int wake[2];     /* a byte on wake[1]: one of the WAKE_ */
    int ep;          /* the thread's epoll */
    ino_t ino;       /* the socket this process bound, to remove only that */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct cidr allow[CONFIG_MAX_TRUSTED];
    int n_allow;
    enum stats_level level;
    struct stats_source src;
    pthread_t thread;
    /* per for each listening socket, so an admin listener cannot crowd
     * out the unix one: n_clients in all. */
    struct client *c;
    int per, n_clients;
    int serving;               /* the thread runs */
    uint64_t accept_resume_ms; /* accept failed: the listening sockets rest */
    int resting;               /* they do now */
    size_t held;               /* answer bytes of every client */
    int rounds;                /* clients waiting for the workers */
    /* Requests read whole, waiting for their answer, oldest first: slot
     * numbers (a slot closed or reused since is skipped). */
    uint32_t *queue;
    uint32_t q_head, q_len;
    /* Only this thread writes these: */
    uint64_t busy;                       /* clients closed to make room, or answered busy */
    uint64_t admin_refused;              /* admin clients from outside the allow list */
    uint64_t commands, commands_refused; /* write commands done; refused at level read */
    struct stats_report *report;         /* big: allocated once */
    struct page_rates rates;
};

static void client_close(struct stats_socket *s, struct client *c)
{
    close(c->fd); /* which also takes it out of the epoll set */
    s->held -= c->out_len;
    if (c->round) { /* only at stop: a waiting client is never closed before */
        s->src.round_drop(c->round, s->src.ctx);
        s->rounds--;
    }
    if (c->ans)
        fclose(c->ans);
    free(c->body);
    free(c->out);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static void report_fill(struct stats_socket *s)
{
    memset(s->report, 0, sizeof(*s->report));
    stats_sum(&s->report->sum);
    s->src.fill(s->report, s->src.ctx);
    s->report->stats_busy = s->busy;
    s->report->admin_refused = s->admin_refused;
    s->report->commands = s->commands;
    s->report->commands_refused = s->commands_refused;
}

/* now's rate per second since *was, dt ms ago (0 without have), and now
 * kept in *was for the next sample. */
static double per_second(uint64_t now, uint64_t *was, uint64_t dt, int have)
{
    double r = have ? (double)(now - *was) * 1000 / (double)dt : 0;

    *was = now;
    return r;
}

/* The rates for the status page, into the report just filled: made anew
 * when the last sample is at least a second old (so pages fetched more
 * often share them), over at most five minutes. */
static void page_rates(struct stats_socket *s)
{
    struct page_rates *p = &s->rates;
    struct stats_report *r = s->report;
    uint64_t now = mono_ms(), dt = now - p->at_ms;

    if (!p->at_ms || dt >= 1000) {
        p->have = p->at_ms && dt <= 300000;
        for (int i = 0; i < STATS_MAX_LISTENERS; i++)
            p->listener[i] =
                per_second(stat_get(&r->sum.l[i].accepted), &p->accepted[i], dt, p->have);
        for (int i = 0; i < STATS_MAX_BACKENDS; i++) {
            p->backend[i] = per_second(stat_get(&r->sum.b[i].conns), &p->conns[i], dt, p->have);
            for (int d = 0; d < 2; d++)
                p->bps[i][d] =
                    per_second(stat_get(&r->sum.b[i].bytes[d]), &p->bytes[i][d], dt, p->have);
        }
        p->at_ms = now;
    }
    r->have_rates = p->have;
    memcpy(r->listener_rate, p->listener, sizeof(r->listener_rate));
    memcpy(r->backend_rate, p->backend, sizeof(r->backend_rate));
    memcpy(r->backend_bps, p->bps, sizeof(r->backend_bps));
}

/* The n bytes of line as one printable line of at most cap - 1 bytes. */
static void printable(const char *line, size_t n, char *out, size_t cap)
{
    for (size_t i = 0; i < cap; i++)
        out[i] = i + 1 == cap || i >= n ? '\0' : line[i] < ' ' || line[i] > '~' ? '?' : line[i];
}

/* Past HELD_MAX of answers held, the oldest readers still taking theirs
 * are closed until there is room: a new request is never turned away,
 * and no reader holds more than its turn. */
static void make_room(struct stats_socket *s)
{
    while (s->held >= HELD_MAX) {
        struct client *oldest = NULL;
        for (int i = 0; i < s->n_clients; i++) {
            struct client *c = &s->c[i];
            if (c->fd >= 0 && c->out && (!oldest || c->since_ms < oldest->since_ms))
                oldest = c;
        }
        if (!oldest)
            return;
        client_close(s, oldest);
        s->busy++;
    }
}

/* cmd (NULL: show conns) done by the process: at once, or by a round of
 * the workers that c then waits for. */
static void command(struct stats_socket *s, struct client *c, const struct admin_cmd *cmd,
                    FILE *out)
{
    int ret = s->src.command(cmd, c->who, out, &c->round, s->src.ctx);

    if (ret == 0 && cmd)
        s->commands++;
    if (ret == 1) {
        c->round_writes = cmd != NULL;
        s->rounds++;
    }
}

/* A write command (n bytes of line, no newline): refused at level read,
 * else parsed and done. */
static void answer_write(struct stats_socket *s, struct client *c, const char *line, size_t n,
                         FILE *out)
{
    struct admin_cmd cmd;
    char err[200], text[128];

    if (s->level != STATS_LEVEL_ADMIN) {
        s->commands_refused++;
        printable(line, n, text, sizeof(text));
        log_rl(LOG_LEVEL_WARN, "stats socket: '%s' (%s): refused: the socket is read-only", text,
               c->who);
        fprintf(out, "error: permission denied: stats socket is read-only "
                     "(stats_socket_level: read); nothing changed\n");
        return;
    }
    if (admin_cmd_parse(line, n, &cmd, err, sizeof(err)) < 0) {
        fprintf(out, "error: %s; nothing changed\n", err);
        return;
    }
    command(s, c, &cmd, out);
}

/* The body for cmd, and its content type; the status when it is not 200.
 * line (n bytes) is the command line of a line request. */
static void answer_body(struct stats_socket *s, struct client *c, enum stats_cmd cmd,
                        const char *line, size_t n, FILE *out, const char **type,
                        const char **status)
{
    char why[STATS_NOT_READY_MAX], text[64];

    *type = "text/plain; charset=utf-8";
    switch (cmd) {
    case STATS_CMD_HELP:
        fputs(stats_help, out);
        return;
    case STATS_CMD_READY: /* answered without the whole report: probes come first */
        s->src.ready(why, sizeof(why), s->src.ctx);
        fprintf(out, "%s\n", why[0] ? why : "ready");
        if (why[0])
            *status = "503 Service Unavailable";
        return;
    case STATS_CMD_CONNS:
        command(s, c, NULL, out);
        return;
    case STATS_CMD_UNKNOWN:
        printable(line, n, text, sizeof(text));
        fprintf(out, "error: unknown command '%s'; try: help\n", text);
        return;
    case STATS_CMD_WRITE:
        answer_write(s, c, line, n, out);
        return;
    case STATS_CMD_NOT_FOUND:
        *status = "404 Not Found";
        fprintf(out, "not found: try /, /ready, /metrics or /stats.json\n");
        return;
    default:
        break;
    }
    report_fill(s);
    if (cmd == STATS_CMD_STATS)
        stats_report_text(s->report, out);
    else if (cmd == STATS_CMD_SERVERS)
        stats_report_servers(s->report, out);
    else if (cmd == STATS_CMD_PAGE) {
        *type = "text/html; charset=utf-8";
        page_rates(s);
        stats_report_html(s->report, out);
    } else if (cmd == STATS_CMD_METRICS) {
        *type = "text/plain; version=0.0.4; charset=utf-8";
        stats_report_prometheus(s->report, out);
    } else {
        *type = "application/json";
        stats_report_json(s->report, out);
    }
}

/* Each command line in c->in from c->line_off, answered in order: the
 * lines that came with the first are all read. What follows the last
 * whole line is refused, not dropped. Returns 1 when a line waits for the
 * workers (c->round; the next line is at c->line_off), 0 when all are
 * answered. */
static int answer_lines(struct stats_socket *s, struct client *c)
{
    const char *type, *status;
    char text[64];

    while (c->line_off < c->in_len) {
        const char *line = c->in + c->line_off;
        size_t left = c->in_len - c->line_off, n;
        enum stats_cmd cmd = STATS_CMD_UNKNOWN;
        int http, ret = stats_request_parse(line, left, &cmd, &http);

        if (ret < 0) {
            const char *nl = memchr(line, '\n', left);
            printable(line, nl ? (size_t)(nl - line) : left, text, sizeof(text));
            if (ret == -EAGAIN)
                fprintf(c->ans, "error: '%s' does not end in a newline; not done\n", text);
            else
                fprintf(c->ans,
                        "error: '%s': a request is one command line (no control bytes) "
                        "or an HTTP GET, under 4 KiB; nothing done\n",
                        text);
            if (!nl)
                return 0;
            c->line_off += (size_t)(nl - line) + 1;
            continue;
        }
        if (http) { /* an HTTP request after a command line: not one of ours */
            fprintf(c->ans, "error: an HTTP request after a command line; not done\n");
            return 0;
        }
        n = (size_t)ret - 1;
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
            n--;
        c->line_off += (size_t)ret;
        answer_body(s, c, cmd, line, n, c->ans, &type, &status);
        if (c->round)
            return 1;
    }
    return 0;
}

/* The answer lives in the client's slot (c->ans, c->body, c->out) until
 * client_close() frees it; gcc 12's analyzer loses it in the table and
 * reports leaks. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
/* The answer made: its head (HTTP) and body as one buffer to write. */
static void answer_finish(struct stats_socket *s, struct client *c)
{
    char head[256];
    size_t body_len;
    int n = 0;

    fclose(c->ans);
    c->ans = NULL;
    body_len = c->body_len;
    if (c->http)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     c->status, c->type, body_len);
    if (c->http == STATS_HTTP_HEAD && !c->bad)
        body_len = 0; /* the head says how long the body would be */
    make_room(s);     /* c has no answer yet: not one to close */
    c->out = malloc((size_t)n + body_len + 1);
    if (!c->out) {
        client_close(s, c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    memcpy(c->out + n, c->body, body_len);
    c->out_len = (size_t)n + body_len;
    c->deadline_ms = mono_ms() + ANSWER_IDLE_MS;
    s->held += c->out_len;
    free(c->body);
    c->body = NULL;
    shutdown(c->fd, SHUT_RD);
}

/* Starts the answer to the request in c->in, whose first request parsed
 * as ret, cmd and http: made at once, or once the workers have done
 * their part (c->round). */
static void client_answer(struct stats_socket *s, struct client *c, int ret, enum stats_cmd cmd,
                          int http)
{
    c->ans = open_memstream(&c->body, &c->body_len);
    if (!c->ans) {
        client_close(s, c);
        return;
    }
    c->type = "text/plain; charset=utf-8";
    c->status = "200 OK";
    if (c->admin && !http) {
        ret = -EPROTO; /* the admin listener speaks HTTP only */
        http = STATS_HTTP_GET;
    }
    c->http = http;
    c->bad = ret < 0;
    if (ret < 0 && http) {
        c->status = "400 Bad Request";
        fprintf(c->ans, c->admin ? "bad request: GET or HEAD /, /ready, /metrics or /stats.json\n"
                                 : "bad request: GET or HEAD /, /ready, /metrics or /stats.json "
                                   "over HTTP/1.0 or HTTP/1.1, under 4 KiB\n");
    } else if (http) {
        answer_body(s, c, cmd, NULL, 0, c->ans, &c->type, &c->status);
    } else if (answer_lines(s, c)) {
        return;
    }
    answer_finish(s, c);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static void client_start_write(struct stats_socket *s, struct client *c, uint64_t now);

/* Reads what has come of the request. Once it is whole (or cannot be),
 * /ready is answered at once and anything else marked pending; returns 1
 * for that. */
static int client_read(struct stats_socket *s, struct client *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    enum stats_cmd cmd = STATS_CMD_UNKNOWN;
    int http = 0, ret;

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < 0 || (n == 0 && !c->in_len)) {
        client_close(s, c);
        return 0;
    }
    c->in_len += (size_t)n;
    ret = stats_request_parse(c->in, c->in_len, &cmd, &http);
    /* The end of what the client sends makes a cut request whole: it is
     * answered (refused), not dropped. */
    if (ret == -EAGAIN && c->in_len < sizeof(c->in) && n > 0)
        return 0;
    if (ret >= 0 && cmd == STATS_CMD_READY && (http || c->in_len == (size_t)ret)) {
        client_answer(s, c, ret, cmd, http);
        client_start_write(s, c, mono_ms());
        return 0;
    }
    c->pending = 1;
    c->deadline_ms = mono_ms() + PENDING_MS; /* the client did its part: not the request's bound */
    /* Nothing more is read: out of the epoll set until its answer is
     * written, since a client that closes or sends on would keep waking
     * the thread (EPOLLHUP cannot be masked). */
    (void)epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    return 1;
}

/* Sends what the socket takes of the answer; closes once it is all sent.
 * Progress moves the deadline. */
static void client_write(struct stats_socket *s, struct client *c, uint64_t now)
{
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(s, c);
        return;
    }
    c->out_off += (size_t)n;
    c->deadline_ms = now + ANSWER_IDLE_MS;
    if (c->out_off == c->out_len) {
        /* What is left unread of a request too long would turn the close
         * into a reset, which can cost the client the answer. */
        for (int i = 0; i < 16 && recv(c->fd, c->in, sizeof(c->in), MSG_DONTWAIT) > 0; i++)
            ;
        client_close(s, c);
    }
}

/* An answer just built: sent at once where the socket takes it (most
 * do), else written as the client reads. */
static void client_start_write(struct stats_socket *s, struct client *c, uint64_t now)
{
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)(c - s->c)};

    if (c->fd < 0 || !c->out || c->out_off)
        return;
    client_write(s, c, now);
    if (c->fd >= 0 &&
        epoll_ctl(s->ep, c->pending ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) == -1)
        client_close(s, c);
}

/* Whether an admin client's address is in the allow list. */
static int admin_allowed(const struct stats_socket *s, const union sockaddr_inet *peer)
{
    for (int i = 0; i < s->n_allow; i++)
        if (cidr_match(&s->allow[i], &peer->sa))
            return 1;
    return 0;
}

/* An admin client from outside the allow list: one line, closed, counted,
 * logged. */
static void admin_refuse(struct stats_socket *s, int fd, const union sockaddr_inet *peer)
{
    static const char forbidden[] = "forbidden: this address is not in admin.allow\n";
    char in[512], out[256], addr[ADDR_STRLEN];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.0 403 Forbidden\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(forbidden) - 1, forbidden);

    log_rl(LOG_LEVEL_WARN, "admin listener: refused %s: not in admin.allow",
           addr_format(&peer->sa, addr, sizeof(addr)));
    /* What has arrived is read, so that the close is not a reset. */
    for (int i = 0; i < 8 && recv(fd, in, sizeof(in), MSG_DONTWAIT) > 0; i++)
        ;
    (void)!send(fd, out, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
    s->admin_refused++;
}

/* Who goes first when the table is full: a client still sending its
 * request, then one waiting for its answer, then a reader of one. */
static int rank(const struct client *c)
{
    return c->out ? 2 : c->pending ? 1 : 0;
}

/* A slot for a new client of listening socket which: a free one, or else
 * the lowest ranked and oldest client's, closed to make room (one waiting
 * for the workers never is): a stuck client costs only itself, never a
 * probe. */
static struct client *slot_for(struct stats_socket *s, int which)
{
    struct client *first = &s->c[which * s->per], *victim = NULL;

    for (struct client *c = first; c < first + s->per; c++) {
        if (c->fd < 0)
            return c;
        if (c->round) /* the workers are writing into its round */
            continue;
        if (!victim || rank(c) < rank(victim) ||
            (rank(c) == rank(victim) && c->since_ms < victim->since_ms))
            victim = c;
    }
    if (!victim)
        return NULL;
    client_close(s, victim);
    s->busy++;
    return victim;
}

static int has_free(const struct stats_socket *s, int which)
{
    for (int i = which * s->per; i < (which + 1) * s->per; i++)
        if (s->c[i].fd < 0)
            return 1;
    return 0;
}

/* Takes one client from listening socket which; returns 0 when there was
 * none to take. */
static int accept_client(struct stats_socket *s, int which, uint64_t now)
{
    union sockaddr_inet peer;
    socklen_t len = sizeof(peer);
    int fd = accept4(s->fd[which], &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct ucred cred = {0};
    socklen_t clen = sizeof(cred);
    struct epoll_event ev = {.events = EPOLLIN};
    struct client *c;

    if (fd == -1) {
        /* Out of descriptors or memory: the client stays queued, and polling
         * the socket again at once would spin. */
        if (err_out_of_resources(errno))
            s->accept_resume_ms = now + ACCEPT_BACKOFF_MS;
        return 0;
    }
    if (which == LISTEN_ADMIN && !admin_allowed(s, &peer)) {
        admin_refuse(s, fd, &peer);
        return 1;
    }
    c = slot_for(s, which);
    if (!c) { /* every client waits for the workers: rare, and short */
        close(fd);
        s->busy++;
        return 1;
    }
    ev.data.u32 = (uint32_t)(c - s->c);
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        close(fd);
        return 1;
    }
    c->fd = fd;
    c->admin = which == LISTEN_ADMIN;
    c->since_ms = now;
    c->deadline_ms = now + REQUEST_MS;
    if (which == LISTEN_UNIX && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
        snprintf(c->who, sizeof(c->who), "uid=%u pid=%d", cred.uid, cred.pid);
    else
        snprintf(c->who, sizeof(c->who), "admin listener");
    return 1;
}

/* Takes what is queued on listening socket which, a batch at a time so
 * that the clients already in keep being served. */
static void accept_batch(struct stats_socket *s, int which, uint64_t now)
{
    for (int i = 0; i < BATCH && s->fd[which] >= 0 && now >= s->accept_resume_ms; i++)
        if (!accept_client(s, which, now))
            return;
}

/* Listens on (events EPOLLIN) or rests (0) the listening socket which. */
static void listen_events(struct stats_socket *s, int which, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.u32 = EV_LISTEN + (uint32_t)which};

    if (s->fd[which] >= 0)
        (void)epoll_ctl(s->ep, op, s->fd[which], &ev);
}

/* The admin socket, listening already, is served from now on (a
 * successor, once it is ready) or closes (its successor took over): what is
 * queued on it by then is accepted first, since closing a socket resets its
 * queue. */
static void admin_change(struct stats_socket *s, char what, uint64_t now)
{
    if (s->admin_fd < 0)
        return;
    if (what == WAKE_ADMIN_LISTEN) {
        if (s->fd[LISTEN_ADMIN] < 0) {
            s->fd[LISTEN_ADMIN] = s->admin_fd;
            listen_events(s, LISTEN_ADMIN, s->resting ? 0 : EPOLLIN, EPOLL_CTL_ADD);
        }
        return;
    }
    /* Only into free slots: making room would close clients accepted
     * moments ago, unanswered. */
    while (s->fd[LISTEN_ADMIN] >= 0 && has_free(s, LISTEN_ADMIN) &&
           accept_client(s, LISTEN_ADMIN, now))
        ;
    close(s->admin_fd);
    s->admin_fd = s->fd[LISTEN_ADMIN] = -1;
}

/* A byte on the wake pipe: 1 to stop the thread. */
static int woken(struct stats_socket *s, uint64_t now)
{
    char b;
    ssize_t n = read(s->wake[0], &b, 1);

    if (n == -1 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n == 1 && (b == WAKE_ADMIN_LISTEN || b == WAKE_ADMIN_CLOSE)) {
        admin_change(s, b, now);
        return 0;
    }
    return 1;
}

/* Closes the clients past their deadline; returns the ms until the next
 * deadline (at most 500). */
static int expire(struct stats_socket *s, uint64_t now)
{
    uint64_t next = now + 500;

    for (int i = 0; i < s->n_clients; i++) {
        struct client *c = &s->c[i];
        if (c->fd < 0 || c->round) /* a round ends by itself, within a second */
            continue;
        if (now >= c->deadline_ms)
            client_close(s, c);
        else if (c->deadline_ms < next)
            next = c->deadline_ms;
    }
    if (s->accept_resume_ms > now && s->accept_resume_ms < next)
        next = s->accept_resume_ms;
    return (int)(next - now);
}

/* The listening sockets rest while accept is backing off. */
static void rest_listeners(struct stats_socket *s, uint64_t now, int *resting)
{
    int rest = now < s->accept_resume_ms;

    if (rest == *resting)
        return;
    for (int k = 0; k < LISTENS; k++)
        listen_events(s, k, rest ? 0 : EPOLLIN, EPOLL_CTL_MOD);
    *resting = rest;
    s->resting = rest;
}

/* The answer to c's request, whole, and the start of its writing. */
static void answer_now(struct stats_socket *s, struct client *c, uint64_t now)
{
    enum stats_cmd cmd = STATS_CMD_UNKNOWN;
    int http = 0, ret = stats_request_parse(c->in, c->in_len, &cmd, &http);

    client_answer(s, c, ret, cmd, http);
    client_start_write(s, c, now);
}

/* The clients waiting for the workers whose rounds have ended: their
 * answers go on. */
static void rounds_poll(struct stats_socket *s, uint64_t now)
{
    for (int i = 0; i < s->n_clients && s->rounds; i++) {
        struct client *c = &s->c[i];
        int ret;
        if (c->fd < 0 || !c->round)
            continue;
        ret = s->src.round_end(c->round, c->ans, s->src.ctx);
        if (ret == -EINPROGRESS)
            continue;
        c->round = NULL;
        s->rounds--;
        if (ret == 0 && c->round_writes)
            s->commands++;
        if (!answer_lines(s, c)) {
            answer_finish(s, c);
            client_start_write(s, c, now);
        }
    }
}

/* c's request waits for its answer behind the others; answered now if
 * the queue is full (of slots since closed: a slot is queued once while it
 * is pending). */
static void queue_answer(struct stats_socket *s, struct client *c, uint64_t now)
{
    uint32_t cap = s->n_clients;

    if (s->q_len == cap) {
        answer_now(s, c, now);
        return;
    }
    s->queue[(s->q_head + s->q_len++) % cap] = (uint32_t)(c - s->c);
}

/* Answers up to ANSWERS_PER_ROUND of the queued requests. */
static void answer_queued(struct stats_socket *s, uint64_t now)
{
    for (int done = 0; done < ANSWERS_PER_ROUND && s->q_len; s->q_len--) {
        struct client *c = &s->c[s->queue[s->q_head]];

        s->q_head = (s->q_head + 1) % s->n_clients;
        if (c->fd < 0 || !c->pending || c->ans || c->round || c->out)
            continue; /* closed since, or its slot's new client is answered already */
        answer_now(s, c, now);
        done++;
    }
}

/* One batch of events: reads and writes, /ready answered as it is read
 * and other requests queued; then accepts, then a few queued answers.
 * Returns 1 to stop. */
static int serve_batch(struct stats_socket *s, const struct epoll_event *ev, int n)
{
    int accept_on[LISTENS] = {0};
    uint64_t now = mono_ms();

    for (int k = 0; k < n; k++) {
        uint32_t id = ev[k].data.u32;
        struct client *c = &s->c[id];
        if (id == EV_WAKE) {
            if (woken(s, now))
                return 1;
        } else if (id >= EV_LISTEN) {
            accept_on[id - EV_LISTEN] = 1;
        } else if (c->fd >= 0 && c->out) {
            client_write(s, c, now);
        } else if (c->fd >= 0 && !c->pending && client_read(s, c)) {
            queue_answer(s, c, now);
        }
    }
    for (int k = 0; k < LISTENS; k++)
        if (accept_on[k])
            accept_batch(s, k, now);
    answer_queued(s, now);
    return 0;
}

#define ROUND_POLL_MS 2 /* how often a round is looked at: the workers tick every 100 ms */

static void *server_main(void *arg)
{
    struct stats_socket *s = arg;
    struct epoll_event ev[BATCH];
    int resting = 0;

    pthread_setname_np(pthread_self(), "rr-stats");
    /* Below the workers where they share a core: a scrape (about 0.5 ms of
     * CPU for /metrics) waits for a worker rather than delaying it, and is
     * never starved (nice, not SCHED_IDLE: /ready must answer under load). */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), STATS_THREAD_NICE);
    for (;;) {
        uint64_t now = mono_ms();
        int timeout = expire(s, now), n;
        rest_listeners(s, now, &resting);
        if (s->q_len)
            timeout = 0;
        else if (s->rounds && timeout > ROUND_POLL_MS)
            timeout = ROUND_POLL_MS;
        n = epoll_wait(s->ep, ev, BATCH, timeout);
        if (n == -1 && errno != EINTR)
            break;
        if (n >= 0 && serve_batch(s, ev, n))
            break;
        if (s->rounds)
            rounds_poll(s, mono_ms());
    }
    return NULL;
}

/* Binds a socket at a temporary name next to path, then renames it into
 * place. Returns the fd or -errno, with err filled. */
static int socket_open(struct stats_socket *s, const char *path, gid_t gid, char *err,
                       size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const char *what = "socket";
    struct stat st;

    if (fd == -1)
        goto fail;
    if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s.%d.tmp", path, getpid()) >=
        sizeof(a.sun_path)) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    (void)unlink(a.sun_path);
    what = "bind";
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1)
        goto fail;
    what = "chmod";
    if (chmod(a.sun_path, 0660) == -1)
        goto fail_unlink;
    what = "chown";
    if (gid != (gid_t)-1 && chown(a.sun_path, (uid_t)-1, gid) == -1)
        goto fail_unlink;
    what = "listen";
    if (listen(fd, LISTEN_BACKLOG) == -1 || stat(a.sun_path, &st) == -1)
        goto fail_unlink;
    what = "rename";
    if (rename(a.sun_path, path) == -1)
        goto fail_unlink;
    s->ino = st.st_ino;
    return fd;

fail_unlink:
    (void)unlink(a.sun_path);
fail:
    snprintf(err, errlen, "stats socket %s: %s: %s", path, what, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

/* The admin listener: a TCP socket open across exec (an upgrade's successor
 * inherits it) with SO_REUSEPORT (one that did not binds beside it),
 * listening unless later. Returns the fd, or -1 with err filled. */
static int admin_open(const union sockaddr_inet *a, int later, char *err, size_t errlen)
{
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    const char *what = "socket";
    char addr[ADDR_STRLEN];

    if (fd == -1)
        goto fail;
    what = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        (a->sa.sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1))
        goto fail;
    what = "bind";
    if (bind(fd, &a->sa, addr_len(&a->sa)) == -1)
        goto fail;
    what = "listen";
    if (!later && listen(fd, LISTEN_BACKLOG) == -1)
        goto fail;
    return fd;

fail:
    snprintf(err, errlen, "admin listener %s: %s: %s", addr_format(&a->sa, addr, sizeof(addr)),
             what, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

static void server_free(struct stats_socket *s)
{
    if (s->wake[0] >= 0) {
        close(s->wake[0]);
        close(s->wake[1]);
    }
    if (s->ep >= 0)
        close(s->ep);
    if (s->fd[LISTEN_UNIX] >= 0)
        close(s->fd[LISTEN_UNIX]);
    if (s->admin_fd >= 0)
        close(s->admin_fd);
    free(s->report);
    free(s->queue);
    free(s->c);
    free(s);
}

uint32_t stats_socket_clients(uint64_t fd_limit)
{
    uint64_t n = fd_limit / 64;

    return n < STATS_SOCKET_CLIENTS_MIN   ? STATS_SOCKET_CLIENTS_MIN
           : n > STATS_SOCKET_CLIENTS_MAX ? STATS_SOCKET_CLIENTS_MAX
                                          : (uint32_t)n;
}

struct stats_socket *stats_socket_open(const char *path, gid_t gid, enum stats_level level,
                                       uint32_t clients, const struct stats_source *src, char *err,
                                       size_t errlen)
{
    struct stats_socket *s = calloc(1, sizeof(*s));

    if (s) {
        s->per = (int)clients;
        s->n_clients = LISTENS * s->per;
    }
    if (!s || !(s->report = malloc(sizeof(*s->report))) ||
        !(s->c = calloc(s->n_clients, sizeof(*s->c))) ||
        !(s->queue = calloc(s->n_clients, sizeof(*s->queue)))) {
        snprintf(err, errlen, "stats socket: out of memory");
        if (s) {
            free(s->report);
            free(s->c);
        }
        free(s);
        return NULL;
    }
    s->src = *src;
    s->level = level;
    for (int i = 0; i < s->n_clients; i++)
        s->c[i].fd = -1;
    s->wake[0] = s->wake[1] = s->ep = -1;
    s->fd[LISTEN_UNIX] = s->fd[LISTEN_ADMIN] = s->admin_fd = -1;
    if (path) {
        snprintf(s->path, sizeof(s->path), "%s", path);
        if ((s->fd[LISTEN_UNIX] = socket_open(s, path, gid, err, errlen)) < 0) {
            server_free(s);
            return NULL;
        }
    }
    return s;
}

/* The thread's epoll, with the wake pipe and the sockets served now. */
static int events_open(struct stats_socket *s)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_WAKE};

    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) == -1 ||
        (s->ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake[0], &ev) == -1)
        return -1;
    for (int k = 0; k < LISTENS; k++)
        listen_events(s, k, EPOLLIN, EPOLL_CTL_ADD);
    return 0;
}

int stats_socket_serve(struct stats_socket *s, const struct stats_admin *admin, char *err,
                       size_t errlen)
{
    if (admin) {
        s->n_allow = admin->n_allow < CONFIG_MAX_TRUSTED ? admin->n_allow : CONFIG_MAX_TRUSTED;
        memcpy(s->allow, admin->allow, (size_t)s->n_allow * sizeof(*s->allow));
        s->admin_fd =
            admin->fd >= 0 ? admin->fd : admin_open(admin->addr, admin->later, err, errlen);
        if (s->admin_fd < 0)
            return -1;
        if (!admin->later)
            s->fd[LISTEN_ADMIN] = s->admin_fd;
    }
    if (events_open(s) < 0 || (errno = pthread_create(&s->thread, NULL, server_main, s))) {
        snprintf(err, errlen, "stats thread: %s", strerror(errno));
        return -1;
    }
    s->serving = 1;
    return 0;
}

void stats_socket_admin_listen(struct stats_socket *s)
{
    if (!s || !s->serving || s->admin_fd < 0)
        return;
    /* Here, not in the thread: the socket takes clients (into its queue)
     * before this returns, so a predecessor told to let go right after
     * never leaves the port without a listener. */
    if (listen(s->admin_fd, LISTEN_BACKLOG) == -1) {
        log_error("admin listener: listen: %s", strerror(errno));
        return;
    }
    (void)!write(s->wake[1], &(char){WAKE_ADMIN_LISTEN}, 1);
}

void stats_socket_close_admin(struct stats_socket *s)
{
    if (s && s->serving)
        (void)!write(s->wake[1], &(char){WAKE_ADMIN_CLOSE}, 1);
}

void stats_socket_stop(struct stats_socket *s)
{
    struct stat st;

    if (!s)
        return;
    if (s->serving) {
        (void)!write(s->wake[1], &(char){WAKE_STOP}, 1);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < s->n_clients; i++)
        if (s->c[i].fd >= 0)
            client_close(s, &s->c[i]);
    /* A newer process may have renamed its own socket over ours. */
    if (s->fd[LISTEN_UNIX] >= 0 && stat(s->path, &st) == 0 && st.st_ino == s->ino)
        (void)unlink(s->path);
    server_free(s);
}
