/* The stats socket's thread: poll(2) over the listening sockets (the unix
 * one and the admin listener) and a few clients, each with a deadline;
 * answers are built whole, then written as the client takes them. */
#include "stats_socket.h"

#include "admin_cmd.h"
#include "log.h"
#include "syserr.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS 16 /* per listening socket: an admin listener cannot crowd out the unix one */
#define CLIENT_DEADLINE_MS 5000
#define REQUEST_BUF 4096
#define ACCEPT_BACKOFF_MS 200 /* after accept failed for want of a descriptor */
#define STR_(x) #x
#define STR(x) STR_(x)
#define BUSY_BODY "busy: " STR(CLIENTS) " stats clients already connected; try again\n"
#define STATS_THREAD_NICE 10
#define WAKE_STOP 's'
#define WAKE_ADMIN_LISTEN 'l'
#define WAKE_ADMIN_CLOSE 'a'

enum { LISTEN_UNIX, LISTEN_ADMIN, LISTENS };

struct client {
    int fd;       /* -1: free */
    int admin;    /* from the admin listener: HTTP only */
    char who[48]; /* "uid=N pid=N" of a unix socket client (SO_PEERCRED) */
    uint64_t deadline_ms;
    char in[REQUEST_BUF];
    size_t in_len;
    char *out; /* the whole answer, once the request is read */
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
    ino_t ino;       /* the socket this process bound, to remove only that */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct cidr allow[CONFIG_MAX_TRUSTED];
    int n_allow;
    enum stats_level level;
    struct stats_source src;
    pthread_t thread;
    struct client c[LISTENS * CLIENTS]; /* CLIENTS for each listening socket */
    int serving;                        /* the thread runs */
    uint64_t accept_resume_ms;          /* accept failed: the listening sockets rest */
    /* Only this thread writes these: */
    uint64_t busy;                       /* clients answered busy, every slot taken */
    uint64_t admin_refused;              /* admin clients from outside the allow list */
    uint64_t commands, commands_refused; /* write commands done; refused at level read */
    struct stats_report *report;         /* big: allocated once */
    struct page_rates rates;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void client_close(struct client *c)
{
    close(c->fd);
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
    uint64_t now = now_ms(), dt = now - p->at_ms;

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

/* A write command: refused at level read, else parsed and done. The
 * request's first line is in c->in. */
static void answer_write(struct stats_socket *s, struct client *c, FILE *out)
{
    const char *nl = memchr(c->in, '\n', c->in_len);
    size_t n = nl ? (size_t)(nl - c->in) : c->in_len;
    struct admin_cmd cmd;
    char err[200], line[128];

    while (n && (c->in[n - 1] == '\r' || c->in[n - 1] == ' '))
        n--;
    if (s->level != STATS_LEVEL_ADMIN) {
        s->commands_refused++;
        for (size_t i = 0; i < sizeof(line); i++) /* the client's bytes, as one printable line */
            line[i] = i + 1 == sizeof(line) || i >= n    ? '\0'
                      : c->in[i] < ' ' || c->in[i] > '~' ? '?'
                                                         : c->in[i];
        log_rl(LOG_LEVEL_WARN, "stats socket: '%s' (%s): refused: the socket is read-only", line,
               c->who);
        fprintf(out, "permission denied: stats socket is read-only (stats_socket_level: read)\n");
        return;
    }
    if (admin_cmd_parse(c->in, n, &cmd, err, sizeof(err)) < 0) {
        fprintf(out, "error: %s; nothing changed\n", err);
        return;
    }
    if (s->src.command(&cmd, c->who, out, s->src.ctx) == 0)
        s->commands++;
}

/* The body for cmd, and its content type; the status when it is not 200. */
static void answer_body(struct stats_socket *s, struct client *c, enum stats_cmd cmd, FILE *out,
                        const char **type, const char **status)
{
    *type = "text/plain; charset=utf-8";
    switch (cmd) {
    case STATS_CMD_HELP:
        fputs(stats_help, out);
        return;
    case STATS_CMD_CONNS:
        s->src.conns(out, s->src.ctx);
        return;
    case STATS_CMD_UNKNOWN:
        fprintf(out, "unknown command; try: help\n");
        return;
    case STATS_CMD_WRITE:
        answer_write(s, c, out);
        return;
    case STATS_CMD_NOT_FOUND:
        *status = "404 Not Found";
        fprintf(out, "not found: try /, /ready, /metrics or /stats.json\n");
        return;
    default:
        break;
    }
    report_fill(s);
    if (cmd == STATS_CMD_READY) {
        stats_report_ready(s->report, out);
        if (s->report->not_ready[0])
            *status = "503 Service Unavailable";
    } else if (cmd == STATS_CMD_STATS)
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

/* Builds the whole answer to a parsed request (ret < 0: a bad one). */
static void client_answer(struct stats_socket *s, struct client *c, int ret, enum stats_cmd cmd,
                          int http)
{
    char *body = NULL, head[256];
    size_t body_len = 0;
    const char *type = "text/plain; charset=utf-8", *status = "200 OK";
    FILE *out = open_memstream(&body, &body_len);
    int n = 0;

    if (!out) {
        client_close(c);
        return;
    }
    if (c->admin && !http) {
        ret = -EPROTO; /* the admin listener speaks HTTP only */
        http = STATS_HTTP_GET;
    }
    if (ret < 0) {
        status = "400 Bad Request";
        fprintf(out, c->admin ? "bad request: GET or HEAD /, /ready, /metrics or /stats.json\n"
                              : "error: a request is one command line or an HTTP GET, under 4 KiB; "
                                "nothing done\n");
    } else {
        answer_body(s, c, cmd, out, &type, &status);
    }
    fclose(out);
    if (http)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, body_len);
    if (http == STATS_HTTP_HEAD && ret >= 0)
        body_len = 0; /* the head says how long the body would be */
    c->out = malloc((size_t)n + body_len + 1);
    if (!c->out) {
        free(body);
        client_close(c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    memcpy(c->out + n, body, body_len);
    c->out_len = (size_t)n + body_len;
    free(body);
    shutdown(c->fd, SHUT_RD);
}

static void client_read(struct stats_socket *s, struct client *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    enum stats_cmd cmd = STATS_CMD_UNKNOWN;
    int http = 0, ret;

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(c);
        return;
    }
    c->in_len += (size_t)n;
    ret = stats_request_parse(c->in, c->in_len, &cmd, &http);
    if (ret == -EAGAIN && c->in_len < sizeof(c->in))
        return;
    if (!http && ((c->in_len >= 4 && memcmp(c->in, "GET ", 4) == 0) ||
                  (c->in_len >= 5 && memcmp(c->in, "HEAD ", 5) == 0)))
        http = STATS_HTTP_GET; /* too long or cut short: still an HTTP client */
    client_answer(s, c, ret, cmd, http);
}

static void client_write(struct client *c)
{
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(c);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len) {
        /* What is left unread of a request too long would turn the close
         * into a reset, which can cost the client the answer. */
        for (int i = 0; i < 16 && recv(c->fd, c->in, sizeof(c->in), MSG_DONTWAIT) > 0; i++)
            ;
        client_close(c);
    }
}

/* Every slot taken: answers fd at once, in HTTP if the request that has
 * arrived by now says so, without waiting for the rest, and closes it. */
static void busy_answer(struct stats_socket *s, int fd)
{
    char in[512], out[256];
    ssize_t got = recv(fd, in, sizeof(in), MSG_DONTWAIT);
    int head = got >= 5 && memcmp(in, "HEAD ", 5) == 0;
    int n = sizeof(BUSY_BODY) - 1;

    memcpy(out, BUSY_BODY, (size_t)n);
    if (head || (got >= 4 && memcmp(in, "GET ", 4) == 0))
        n = snprintf(out, sizeof(out),
                     "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(BUSY_BODY) - 1, head ? "" : BUSY_BODY);
    (void)!send(fd, out, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
    s->busy++;
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

static void accept_client(struct stats_socket *s, int which, uint64_t now)
{
    union sockaddr_inet peer;
    socklen_t len = sizeof(peer);
    int fd = accept4(s->fd[which], &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd == -1) {
        /* Out of descriptors or memory: the client stays queued, and polling
         * the socket again at once would spin. */
        if (err_out_of_resources(errno))
            s->accept_resume_ms = now + ACCEPT_BACKOFF_MS;
        return;
    }
    if (which == LISTEN_ADMIN && !admin_allowed(s, &peer)) {
        admin_refuse(s, fd, &peer);
        return;
    }
    for (int i = which * CLIENTS; i < (which + 1) * CLIENTS; i++) {
        if (s->c[i].fd < 0) {
            struct ucred cred = {0};
            socklen_t clen = sizeof(cred);
            s->c[i].fd = fd;
            s->c[i].admin = which == LISTEN_ADMIN;
            s->c[i].deadline_ms = now + CLIENT_DEADLINE_MS;
            if (which == LISTEN_UNIX && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
                snprintf(s->c[i].who, sizeof(s->c[i].who), "uid=%u pid=%d", cred.uid, cred.pid);
            else
                snprintf(s->c[i].who, sizeof(s->c[i].who), "admin listener");
            return;
        }
    }
    busy_answer(s, fd);
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
        s->fd[LISTEN_ADMIN] = s->admin_fd;
        return;
    }
    if (s->fd[LISTEN_ADMIN] >= 0) {
        struct pollfd p = {.fd = s->admin_fd, .events = POLLIN};
        for (int i = 0; i < CLIENTS && poll(&p, 1, 0) == 1; i++)
            accept_client(s, LISTEN_ADMIN, now);
    }
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

static void *server_main(void *arg)
{
    struct stats_socket *s = arg;
    struct pollfd p[LISTENS * CLIENTS + 1 + LISTENS];
    int slot[LISTENS * CLIENTS + 1 + LISTENS];

    pthread_setname_np(pthread_self(), "rr-stats");
    /* Below the workers where they share a core: a scrape (about 0.5 ms of
     * CPU for /metrics) waits for a worker rather than delaying it, and is
     * never starved (nice, not SCHED_IDLE: /ready must answer under load). */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), STATS_THREAD_NICE);
    for (;;) {
        uint64_t now = now_ms();
        int n = 1 + LISTENS, resting = now < s->accept_resume_ms;
        p[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        for (int k = 0; k < LISTENS; k++)
            p[1 + k] = (struct pollfd){.fd = resting ? -1 : s->fd[k], .events = POLLIN};
        for (int i = 0; i < LISTENS * CLIENTS; i++) {
            if (s->c[i].fd < 0)
                continue;
            if (now >= s->c[i].deadline_ms) {
                client_close(&s->c[i]);
                continue;
            }
            p[n] = (struct pollfd){.fd = s->c[i].fd, .events = s->c[i].out ? POLLOUT : POLLIN};
            slot[n++] = i;
        }
        if (poll(p, (nfds_t)n, resting ? ACCEPT_BACKOFF_MS : 500) == -1 && errno != EINTR)
            break;
        if (p[0].revents && woken(s, now))
            break;
        for (int k = 1 + LISTENS; k < n; k++) {
            struct client *c = &s->c[slot[k]];
            if (!p[k].revents)
                continue;
            if (c->out)
                client_write(c);
            else
                client_read(s, c);
        }
        for (int k = 0; k < LISTENS; k++)
            if (p[1 + k].fd >= 0 && (p[1 + k].revents & POLLIN))
                accept_client(s, k, now);
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
    if (listen(fd, 64) == -1 || stat(a.sun_path, &st) == -1)
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
    if (!later && listen(fd, 64) == -1)
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
    if (s->fd[LISTEN_UNIX] >= 0)
        close(s->fd[LISTEN_UNIX]);
    if (s->admin_fd >= 0)
        close(s->admin_fd);
    free(s->report);
    free(s);
}

struct stats_socket *stats_socket_open(const char *path, gid_t gid, enum stats_level level,
                                       const struct stats_source *src, char *err, size_t errlen)
{
    struct stats_socket *s = calloc(1, sizeof(*s));

    if (!s || !(s->report = malloc(sizeof(*s->report)))) {
        snprintf(err, errlen, "stats socket: out of memory");
        free(s);
        return NULL;
    }
    s->src = *src;
    s->level = level;
    for (int i = 0; i < LISTENS * CLIENTS; i++)
        s->c[i].fd = -1;
    s->wake[0] = s->wake[1] = -1;
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
    if (pipe2(s->wake, O_CLOEXEC) == -1 ||
        (errno = pthread_create(&s->thread, NULL, server_main, s))) {
        snprintf(err, errlen, "stats thread: %s", strerror(errno));
        if (s->wake[0] >= 0) {
            close(s->wake[0]);
            close(s->wake[1]);
            s->wake[0] = s->wake[1] = -1;
        }
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
    if (listen(s->admin_fd, 64) == -1) {
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
    for (int i = 0; i < LISTENS * CLIENTS; i++)
        if (s->c[i].fd >= 0)
            client_close(&s->c[i]);
    /* A newer process may have renamed its own socket over ours. */
    if (s->fd[LISTEN_UNIX] >= 0 && stat(s->path, &st) == 0 && st.st_ino == s->ino)
        (void)unlink(s->path);
    server_free(s);
}
