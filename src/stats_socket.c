/* The stats socket's thread: poll(2) over the listening socket and a few
 * clients, each with a deadline; answers are built whole, then written as
 * the client takes them. */
#include "stats_socket.h"

#include "syserr.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS 16
#define CLIENT_DEADLINE_MS 5000
#define REQUEST_BUF 4096
#define ACCEPT_BACKOFF_MS 200 /* after accept failed for want of a descriptor */
#define STR_(x) #x
#define STR(x) STR_(x)
#define BUSY_BODY "busy: " STR(CLIENTS) " stats clients already connected; try again\n"

struct client {
    int fd; /* -1: free */
    uint64_t deadline_ms;
    char in[REQUEST_BUF];
    size_t in_len;
    char *out; /* the whole answer, once the request is read */
    size_t out_len, out_off;
};

struct stats_socket {
    int fd;
    int wake[2]; /* a byte on wake[1] stops the thread */
    ino_t ino;   /* the socket this process bound, to remove only that */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stats_source src;
    pthread_t thread;
    struct client c[CLIENTS];
    uint64_t accept_resume_ms;   /* accept failed: the listening socket rests */
    uint64_t busy;               /* clients refused, every slot taken; only this thread */
    struct stats_report *report; /* big: allocated once */
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
    stats_names_read(&s->report->names);
    s->src.fill(s->report, s->src.ctx);
    s->report->stats_busy = s->busy;
}

/* The body for cmd, and its content type. */
static void answer_body(struct stats_socket *s, enum stats_cmd cmd, FILE *out, const char **type)
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
    case STATS_CMD_NOT_FOUND:
        fprintf(out, "not found: try /metrics or /stats.json\n");
        return;
    default:
        break;
    }
    report_fill(s);
    if (cmd == STATS_CMD_STATS)
        stats_report_text(s->report, out);
    else if (cmd == STATS_CMD_SERVERS)
        stats_report_servers(s->report, out);
    else if (cmd == STATS_CMD_METRICS) {
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
    const char *type = "text/plain; charset=utf-8";
    FILE *out = open_memstream(&body, &body_len);
    int n = 0;

    if (!out) {
        client_close(c);
        return;
    }
    if (ret < 0)
        fprintf(out, "bad request: a command line or GET /metrics, under 4 KiB\n");
    else
        answer_body(s, cmd, out, &type);
    fclose(out);
    if (http)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     ret < 0                      ? "400 Bad Request"
                     : cmd == STATS_CMD_NOT_FOUND ? "404 Not Found"
                                                  : "200 OK",
                     type, body_len);
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
    if (c->out_off == c->out_len)
        client_close(c);
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

static void accept_client(struct stats_socket *s, uint64_t now)
{
    int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd == -1) {
        /* Out of descriptors or memory: the client stays queued, and polling
         * the socket again at once would spin. */
        if (err_out_of_resources(errno))
            s->accept_resume_ms = now + ACCEPT_BACKOFF_MS;
        return;
    }
    for (int i = 0; i < CLIENTS; i++) {
        if (s->c[i].fd < 0) {
            s->c[i].fd = fd;
            s->c[i].deadline_ms = now + CLIENT_DEADLINE_MS;
            return;
        }
    }
    busy_answer(s, fd);
}

static void *server_main(void *arg)
{
    struct stats_socket *s = arg;
    struct pollfd p[CLIENTS + 2];
    int slot[CLIENTS + 2];

    pthread_setname_np(pthread_self(), "rr-stats");
    for (;;) {
        uint64_t now = now_ms();
        int n = 2;
        p[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        p[1] = (struct pollfd){.fd = now < s->accept_resume_ms ? -1 : s->fd, .events = POLLIN};
        for (int i = 0; i < CLIENTS; i++) {
            if (s->c[i].fd < 0)
                continue;
            if (now >= s->c[i].deadline_ms) {
                client_close(&s->c[i]);
                continue;
            }
            p[n] = (struct pollfd){.fd = s->c[i].fd, .events = s->c[i].out ? POLLOUT : POLLIN};
            slot[n++] = i;
        }
        if (poll(p, (nfds_t)n, p[1].fd < 0 ? ACCEPT_BACKOFF_MS : 500) == -1 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        for (int k = 2; k < n; k++) {
            struct client *c = &s->c[slot[k]];
            if (!p[k].revents)
                continue;
            if (c->out)
                client_write(c);
            else
                client_read(s, c);
        }
        if (p[1].revents & POLLIN)
            accept_client(s, now);
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

struct stats_socket *stats_socket_start(const char *path, gid_t gid, const struct stats_source *src,
                                        char *err, size_t errlen)
{
    struct stats_socket *s = calloc(1, sizeof(*s));

    if (!s || !(s->report = malloc(sizeof(*s->report)))) {
        snprintf(err, errlen, "stats socket %s: out of memory", path);
        goto fail;
    }
    s->src = *src;
    snprintf(s->path, sizeof(s->path), "%s", path);
    for (int i = 0; i < CLIENTS; i++)
        s->c[i].fd = -1;
    s->wake[0] = s->wake[1] = -1;
    if ((s->fd = socket_open(s, path, gid, err, errlen)) < 0)
        goto fail;
    if (pipe2(s->wake, O_CLOEXEC) == -1 ||
        (errno = pthread_create(&s->thread, NULL, server_main, s))) {
        snprintf(err, errlen, "stats socket %s: %s", path, strerror(errno));
        close(s->fd);
        (void)unlink(path);
        goto fail;
    }
    return s;

fail:
    if (s) {
        if (s->wake[0] >= 0) {
            close(s->wake[0]);
            close(s->wake[1]);
        }
        free(s->report);
    }
    free(s);
    return NULL;
}

void stats_socket_stop(struct stats_socket *s)
{
    struct stat st;

    if (!s)
        return;
    (void)!write(s->wake[1], "", 1);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < CLIENTS; i++)
        if (s->c[i].fd >= 0)
            client_close(&s->c[i]);
    close(s->fd);
    close(s->wake[0]);
    close(s->wake[1]);
    /* A newer process may have renamed its own socket over ours. */
    if (stat(s->path, &st) == 0 && st.st_ino == s->ino)
        (void)unlink(s->path);
    free(s->report);
    free(s);
}
