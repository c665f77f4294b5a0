/* echo: accepts any number of connections, strips a leading PROXY v1/v2
 * header from each and sends everything else back. */
#include "pp_strip.h"
#include "tool.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define BUF_MIN 1024
#define BUF_MAX (1 << 20)
#define READ_IDLE 1

/* One client. buf holds bytes read but not yet sent back: [off, len). */
struct echo_conn {
    struct tool_watch w; /* first: tool_server_drop() frees the block */
    bool in_header;
    struct pp_strip pp;
    size_t off, len;
    uint8_t *buf; /* allocated with the connection, right after it */
};

struct echo {
    struct tool_server srv; /* first: the server's callbacks get &srv */
    struct tool_addr addr;
    long buf_size;
};

static const char usage[] =
    "usage: echo [options] ADDR:PORT\n"
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
    "  -h, --help\n";

/* Fills e from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct echo *e, int argc, char **argv)
{
    static const struct tool_opt opts[] = {
        {"buffer", 'b', TOOL_OPT_COUNT, offsetof(struct echo, buf_size), BUF_MIN, BUF_MAX},
        {"duration", 'd', TOOL_OPT_SECONDS, offsetof(struct echo, srv.duration), 0, 0},
        {NULL, 0, 0, 0, 0, 0}};

    e->buf_size = 16384;
    e->srv.duration = 3600;
    return tool_parse_args(argc, argv, opts, e, usage, &e->addr);
}

static void stats_print(struct tool_server *srv)
{
    tool_stats_print(stdout, &srv->st);
}

static struct tool_watch *conn_new(struct tool_server *srv, int fd)
{
    static const int one = 1;
    struct echo_conn *c = malloc(sizeof(*c) + (size_t)((struct echo *)srv)->buf_size);

    if (!c)
        return NULL;
    /* a reply split by a partial read must not wait for an ACK */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(c, 0, sizeof(*c));
    c->buf = (uint8_t *)(c + 1);
    c->in_header = true;
    pp_strip_init(&c->pp);
    return &c->w;
}

/* Strips the header from the len fresh bytes at buf[0]. Leaves the payload
 * (bytes the stripper held back first) in buf[0, c->len). Returns 0, or
 * -EPROTO for a malformed header. */
static int strip_header(struct echo *e, struct echo_conn *c, size_t len)
{
    size_t used, held = 0;
    enum pp_result r = pp_strip_feed(&c->pp, c->buf, len, &used);

    c->off = 0;
    c->len = 0;
    if (r == PP_MORE)
        return 0;
    c->in_header = false;
    pp_count(&e->srv.st.hdr, &c->pp, r);
    if (r == PP_BAD)
        return -EPROTO;
    if (r == PP_NONE)
        held = c->pp.have;
    memmove(c->buf + held, c->buf + used, len - used);
    memcpy(c->buf, c->pp.held, held);
    c->len = held + len - used;
    return 0;
}

/* Sends back what is buffered. Returns 0 when all of it went, -EAGAIN when
 * the socket is full, or another -errno. */
static int flush_out(struct echo *e, struct echo_conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->w.fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

        if (n == -1)
            return errno == EINTR ? 0 : -errno;
        c->off += (size_t)n;
        e->srv.st.bytes += (size_t)n;
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
    ssize_t n = recv(c->w.fd, c->buf, room, 0);

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
static void conn_ready(struct tool_server *srv, struct tool_watch *w, uint32_t events)
{
    struct echo *e = (struct echo *)srv;
    struct echo_conn *c = (struct echo_conn *)w;
    struct epoll_event ev = {.data.ptr = w};
    int r = c->len ? flush_out(e, c) : 0;

    for (int i = 0; r == 0 && i < 16; i++)
        r = conn_pump(e, c);
    if (r < 0 && r != -EAGAIN) {
        tool_server_drop(srv, w, r);
        return;
    }
    ev.events = r == -EAGAIN ? EPOLLOUT : EPOLLIN;
    if ((events & EPOLLOUT) != (ev.events & EPOLLOUT))
        epoll_ctl(srv->ep, EPOLL_CTL_MOD, w->fd, &ev);
}

int main(int argc, char **argv)
{
    static struct echo e = {
        .srv = {.conn_new = conn_new, .conn_ready = conn_ready, .report = stats_print}};

    if (parse_args(&e, argc, argv) != 0)
        return 2;
    return tool_server_serve(&e.srv, &e.addr, "echo", argv[argc - 1]);
}
