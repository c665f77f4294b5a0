/* echo: accepts any number of connections, strips a leading PROXY v1/v2
 * header from each and sends everything else back. */
#include "pp_strip.h"
#include "tool.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define BUF_MIN 1024
#define BUF_MAX (1 << 20)
#define READ_IDLE 1

enum echo_kind { ECHO_LISTENER, ECHO_SIGNAL, ECHO_CONN };

/* One client. buf holds bytes read but not yet sent back: [off, len). */
struct echo_conn {
    enum echo_kind kind;
    int fd;
    bool in_header;
    struct pp_strip pp;
    size_t off, len;
    uint8_t *buf; /* allocated with the connection, right after it */
};

struct echo_stats {
    unsigned long long accepted, open, hdr_v1, hdr_v2, hdr_none, hdr_bad, bytes, errors;
};

struct echo {
    struct tool_addr addr;
    long buf_size;
    double duration;
    int ep;
    struct echo_conn listener, signal;
    struct echo_stats st;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: echo [options] ADDR:PORT\n"
               "\n"
               "Listens on ADDR:PORT (epoll, nonblocking, any number of connections), strips\n"
               "a leading PROXY protocol v1 line or v2 header from each connection and echoes\n"
               "every other byte back. A malformed header closes the connection. On SIGTERM\n"
               "or SIGINT (or after DURATION) it prints one line and exits; SIGUSR1 prints it\n"
               "without exiting:\n"
               "  accepted=A open=O hdr_v1=N hdr_v2=N hdr_none=N hdr_bad=N bytes=B errors=E\n"
               "\n"
               "  -b, --buffer BYTES     per-connection buffer (default 16384)\n"
               "  -d, --duration DUR     exit after this long anyway (default 3600s)\n"
               "  -h, --help\n");
}

/* Fills e from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct echo *e, int argc, char **argv)
{
    static const struct option opts[] = {{"buffer", required_argument, NULL, 'b'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, bad = 0;

    e->buf_size = 16384;
    e->duration = 3600;
    while ((c = getopt_long(argc, argv, "b:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            bad |= tool_parse_count(optarg, BUF_MIN, BUF_MAX, &e->buf_size);
            break;
        case 'd':
            bad |= tool_parse_seconds(optarg, &e->duration);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            bad = -1;
        }
    }
    if (bad || optind != argc - 1 || tool_parse_addr(argv[optind], &e->addr) != 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static void stats_print(const struct echo *e)
{
    printf("accepted=%llu open=%llu hdr_v1=%llu hdr_v2=%llu hdr_none=%llu hdr_bad=%llu "
           "bytes=%llu errors=%llu\n",
           e->st.accepted, e->st.open, e->st.hdr_v1, e->st.hdr_v2, e->st.hdr_none, e->st.hdr_bad,
           e->st.bytes, e->st.errors);
    fflush(stdout);
}

static void conn_close(struct echo *e, struct echo_conn *c)
{
    close(c->fd);
    free(c);
    e->st.open--;
}

/* Accepts every pending connection. */
static void accept_all(struct echo *e)
{
    static const int one = 1;

    for (;;) {
        struct epoll_event ev = {.events = EPOLLIN};
        struct echo_conn *c;
        int fd = accept4(e->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                e->st.errors++;
            return;
        }
        /* a reply split by a partial read must not wait for an ACK */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = malloc(sizeof(*c) + (size_t)e->buf_size);
        if (!c) {
            close(fd);
            e->st.errors++;
            continue;
        }
        memset(c, 0, sizeof(*c));
        c->buf = (uint8_t *)(c + 1);
        c->kind = ECHO_CONN;
        c->fd = fd;
        c->in_header = true;
        pp_strip_init(&c->pp);
        ev.data.ptr = c;
        epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev);
        e->st.accepted++;
        e->st.open++;
    }
}

/* Strips the header from the len fresh bytes at buf[0]. Leaves the payload
 * (bytes the stripper held back first) in buf[0, c->len). Returns 0, or
 * -EPROTO for a malformed header. */
static int strip_header(struct echo *e, struct echo_conn *c, size_t len)
{
    size_t used;
    enum pp_result r = pp_strip_feed(&c->pp, c->buf, len, &used);

    c->off = 0;
    c->len = 0;
    if (r == PP_MORE)
        return 0;
    c->in_header = false;
    if (r == PP_BAD) {
        e->st.hdr_bad++;
        return -EPROTO;
    }
    if (r == PP_NONE) {
        e->st.hdr_none++;
        memmove(c->buf + c->pp.have, c->buf + used, len - used);
        memcpy(c->buf, c->pp.held, c->pp.have);
        c->len = c->pp.have + len - used;
        return 0;
    }
    if (c->pp.kind == PP_KIND_V1)
        e->st.hdr_v1++;
    else
        e->st.hdr_v2++;
    memmove(c->buf, c->buf + used, len - used);
    c->len = len - used;
    return 0;
}

/* Sends back what is buffered. Returns 0 when all of it went, -EAGAIN when
 * the socket is full, or another -errno. */
static int flush_out(struct echo *e, struct echo_conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

        if (n == -1)
            return errno == EINTR ? 0 : -errno;
        c->off += (size_t)n;
        e->st.bytes += (size_t)n;
    }
    c->off = 0;
    c->len = 0;
    return 0;
}

/* Reads once and echoes. While in the header, reads leave room for the bytes
 * the stripper may hand back. Returns 0 (read and echoed), READ_IDLE (nothing
 * to read), -EAGAIN (the socket is full), or -EPIPE / -errno to close. */
static int conn_pump(struct echo *e, struct echo_conn *c)
{
    size_t room = (size_t)e->buf_size - (c->in_header ? sizeof(c->pp.held) : 0);
    ssize_t n = recv(c->fd, c->buf, room, 0);

    if (n == 0)
        return -EPIPE;
    if (n == -1)
        return errno == EAGAIN || errno == EINTR ? READ_IDLE : -errno;
    c->off = 0;
    c->len = (size_t)n;
    if (c->in_header && strip_header(e, c, (size_t)n) != 0)
        return -EPROTO;
    return flush_out(e, c);
}

/* Handles readiness of one client: finishes a pending send first, then reads
 * and echoes until the socket would block either way. */
static void conn_ready(struct echo *e, struct echo_conn *c, uint32_t events)
{
    struct epoll_event ev = {.data.ptr = c};
    int r = c->len ? flush_out(e, c) : 0;

    for (int i = 0; r == 0 && i < 16; i++)
        r = conn_pump(e, c);
    if (r < 0 && r != -EAGAIN) {
        if (r != -EPIPE && r != -ECONNRESET)
            e->st.errors++;
        conn_close(e, c);
        return;
    }
    ev.events = r == -EAGAIN ? EPOLLOUT : EPOLLIN;
    if ((events & EPOLLOUT) != (ev.events & EPOLLOUT))
        epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Handles pending signals. Returns true when it is time to exit. */
static bool signal_read(struct echo *e)
{
    struct signalfd_siginfo si;
    bool stop = false;

    while (read(e->signal.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1)
            stats_print(e);
        else
            stop = true;
    }
    return stop;
}

/* Runs until a stop signal or the deadline. */
static void run(struct echo *e)
{
    struct epoll_event evs[256];
    uint64_t deadline = tool_now_ns() + (uint64_t)(e->duration * 1e9);
    uint64_t now;

    while ((now = tool_now_ns()) < deadline) {
        int ms = (int)((deadline - now) / 1000000) + 1;
        int n = epoll_wait(e->ep, evs, 256, ms);

        for (int i = 0; i < n; i++) {
            struct echo_conn *c = evs[i].data.ptr;

            if (c->kind == ECHO_LISTENER)
                accept_all(e);
            else if (c->kind == ECHO_SIGNAL && signal_read(e))
                return;
            else if (c->kind == ECHO_CONN)
                conn_ready(e, c, evs[i].events);
        }
    }
}

/* Registers fd as the special entry c. Returns 0 or -errno. */
static int watch(struct echo *e, struct echo_conn *c, enum echo_kind kind, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

    c->kind = kind;
    c->fd = fd;
    return epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) == -1 ? -errno : 0;
}

int main(int argc, char **argv)
{
    static struct echo e;
    int lfd, sfd;

    if (parse_args(&e, argc, argv) != 0)
        return 2;
    tool_raise_nofile();
    sfd = tool_signalfd();
    lfd = tool_listen(&e.addr);
    e.ep = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || lfd < 0 || e.ep == -1) {
        fprintf(stderr, "echo: cannot listen on %s: %s\n", argv[argc - 1],
                strerror(lfd < 0 ? -lfd : errno));
        return 1;
    }
    if (watch(&e, &e.listener, ECHO_LISTENER, lfd) != 0 ||
        watch(&e, &e.signal, ECHO_SIGNAL, sfd) != 0)
        return 1;
    run(&e);
    stats_print(&e);
    return 0;
}
