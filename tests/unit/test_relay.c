/* The connection state machine in-process, behind a fake io back end that
 * completes operations when a test says so: the orders that are hard to
 * time end to end (a completion after a cancel, short sends, readiness
 * with nothing to read, a close while a splice holds bytes, a backend that
 * resets while the PROXY header waits), and the timers in every state.
 * Sockets are real, on loopback, where the relay calls syscalls itself. */
#include "access_log.h"
#include "config.h"
#include "fd_budget.h"
#include "log.h"
#include "relay.h"
#include "relay_pool.h"
#include "runtime.h"
#include "registry.h"
#include "stats.h"
#include "worker.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the fake back end ---- */

enum fake_op { F_RECV, F_SEND, F_POLL_IN, F_POLL_OUT, F_CONNECT, F_OPS };

#define MAX_CONNS 4 /* max_connections in every configuration here */

static struct fake {
    int pending[MAX_CONNS][2][F_OPS]; /* started, not completed: by slot, direction */
    int started[F_OPS];               /* all started, ever */
    int last_drained;                 /* the last poll_in's drained */
    int cancel_drops;                 /* 1: cancel drops everything (as epoll), 0: each completes */
    int abandon_now;                  /* connect_abandon: 1 gone at once, 0 completes later */
    int real_connect;                 /* connect the backend socket for real */
    int cancels, attaches;
    int closes, resets;    /* sockets closed by the back end, plainly or with a reset */
    uint8_t buf_out[1024]; /* 1: the relay holds that buffer */
    int buf_puts;
    uint8_t sent[2][8192]; /* what completed sends took, by direction */
    size_t n_sent[2];
} fk;

static struct worker w;
static struct runtime *rt;
static atomic_uint active_total;
static int be_listen = -1, cl_listen = -1; /* where backends and clients connect */
static int fds_before;

#define PEND(c, d, op) fk.pending[conn_index(&w, (c))][d][op]

static void f_nothing(struct worker *wk)
{
}

static int f_idle(struct worker *wk)
{
    return 1;
}

static void f_attach(struct worker *wk, struct conn *c, int side)
{
    fk.attaches++;
}

static void start_op(struct conn *c, int d, enum fake_op op)
{
    PEND(c, d, op)++;
    fk.started[op]++;
}

/* As the epoll back end: a real socket, at once. */
static void f_socket(struct worker *wk, struct conn *c, int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    relay_on_socket(wk, c, fd >= 0 ? fd : -errno);
}

static void f_connect(struct worker *wk, struct conn *c, const struct sockaddr *sa)
{
    start_op(c, SIDE_BACKEND, F_CONNECT);
    if (fk.real_connect) {
        static const int small = 4096;
        (void)setsockopt(c->fd[SIDE_BACKEND], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        cr_assert(connect(c->fd[SIDE_BACKEND], sa, addr_len(sa)) == 0 || errno == EINPROGRESS);
    }
}

static int f_connect_abandon(struct worker *wk, struct conn *c)
{
    if (fk.abandon_now)
        PEND(c, SIDE_BACKEND, F_CONNECT)--;
    return fk.abandon_now;
}

static void f_recv(struct worker *wk, struct conn *c, int d)
{
    start_op(c, d, F_RECV);
}

static int f_recv_idle(struct worker *wk, struct conn *c, int d)
{
    return 1;
}

static void f_send(struct worker *wk, struct conn *c, int d)
{
    start_op(c, d, F_SEND);
}

static void f_poll_in(struct worker *wk, struct conn *c, int d, int drained)
{
    start_op(c, d, F_POLL_IN);
    fk.last_drained = drained;
}

static void f_poll_out(struct worker *wk, struct conn *c, int d)
{
    start_op(c, d, F_POLL_OUT);
}

static int f_cancel(struct worker *wk, struct conn *c)
{
    int dropped = 0;

    fk.cancels++;
    if (!fk.cancel_drops)
        return 0;
    for (int d = 0; d < 2; d++)
        for (int op = 0; op < F_OPS; op++) {
            dropped += PEND(c, d, op);
            PEND(c, d, op) = 0;
        }
    return dropped;
}

static void f_buf_put(struct worker *wk, uint16_t bid)
{
    cr_assert(fk.buf_out[bid], "buffer %u given back twice", bid);
    fk.buf_out[bid] = 0;
    fk.buf_puts++;
}

/* As the epoll back end: the relay's sockets are real here. */
static void f_close(struct worker *wk, int fd, int reset)
{
    static const struct linger rst = {.l_onoff = 1, .l_linger = 0};

    fk.closes += reset ? 0 : 1;
    fk.resets += reset ? 1 : 0;
    if (reset)
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
    close(fd);
}

static const struct io_backend fake_io = {
    .name = "fake",
    .accept_start = f_nothing,
    .accept_stop = f_nothing,
    .accept_idle = f_idle,
    .attach = f_attach,
    .socket = f_socket,
    .connect = f_connect,
    .connect_abandon = f_connect_abandon,
    .recv = f_recv,
    .recv_idle = f_recv_idle,
    .send = f_send,
    .poll_in = f_poll_in,
    .poll_out = f_poll_out,
    .cancel = f_cancel,
    .buf_put = f_buf_put,
    .close = f_close,
};

/* ---- completing operations ---- */

static void take_pending(struct conn *c, int d, enum fake_op op)
{
    cr_assert_gt(PEND(c, d, op), 0, "no operation %d pending on direction %d", op, d);
    PEND(c, d, op)--;
}

/* A recv on direction d brings len bytes in a buffer of the pool. */
static void recv_bytes(struct conn *c, int d, const void *p, size_t len)
{
    uint16_t bid = 0;

    while (fk.buf_out[bid])
        bid++;
    fk.buf_out[bid] = 1;
    memcpy(buf_data(&w, bid) + BUF_HEADROOM, p, len);
    take_pending(c, d, F_RECV);
    relay_on_recv(&w, c, d, (int)len, bid);
}

static void recv_res(struct conn *c, int d, int res)
{
    take_pending(c, d, F_RECV);
    relay_on_recv(&w, c, d, res, BUF_NONE);
}

/* A send on direction d takes n bytes of what the relay offers (all of
 * it, n < 0), or fails with res < 0 when n is 0. */
static void send_done(struct conn *c, int d, int n, int res)
{
    const void *p;
    size_t len;

    take_pending(c, d, F_SEND);
    relay_send_span(&w, c, d, &p, &len);
    if (res < 0) {
        relay_on_send(&w, c, d, res);
        return;
    }
    if (n < 0 || (size_t)n > len)
        n = (int)len;
    cr_assert_lt(fk.n_sent[d] + (size_t)n, sizeof(fk.sent[d]));
    memcpy(fk.sent[d] + fk.n_sent[d], p, (size_t)n);
    fk.n_sent[d] += (size_t)n;
    relay_on_send(&w, c, d, n);
}

static void poll_done(struct conn *c, int d, enum fake_op op, int res)
{
    take_pending(c, d, op);
    relay_on_poll(&w, c, d, res);
}

static void connect_done(struct conn *c, int res)
{
    take_pending(c, SIDE_BACKEND, F_CONNECT);
    if (fk.real_connect && res == 0) {
        struct pollfd p = {.fd = c->fd[SIDE_BACKEND], .events = POLLOUT};
        cr_assert_eq(poll(&p, 1, 2000), 1);
    }
    relay_on_connect(&w, c, res);
}

/* ---- the worker, its configuration, and peers ---- */

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    cr_assert_not_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int listen_local(int rcvbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    if (rcvbuf)
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    return fd;
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Starts a worker on this configuration: yaml_top goes before the
 * listener, listener and backend are more keys for each. Two servers of
 * the backend listen on loopback (the second only as an address). */
static void start(const char *yaml_top, const char *listener, const char *backend)
{
    static const int listen_fd[1] = {-1};
    static const uint8_t listen_li[1] = {0};
    char yaml[2048], err[256] = "";

    fds_before = open_fds();
    atomic_store(&log_level, LOG_LEVEL_ERROR);
    memset(&fk, 0, sizeof(fk));
    fk.cancel_drops = 1;
    be_listen = listen_local(4096);
    cl_listen = listen_local(0);
    snprintf(yaml, sizeof(yaml),
             "max_connections: %d\n%s"
             "listeners:\n  - name: l\n    bind: 127.0.0.1:1\n%s"
             "backends:\n  - name: b\n    health_check: { mode: off }\n%s"
             "    servers:\n      - address: 127.0.0.1:%d\n      - address: 127.0.0.1:%d\n",
             MAX_CONNS, yaml_top, listener, backend, local_port(be_listen), local_port(cl_listen));
    rt = calloc(1, sizeof(*rt));
    cr_assert_not_null(rt);
    atomic_init(&rt->refs, 1);
    cr_assert_eq(config_parse(&rt->cfg, "t.yaml", yaml, strlen(yaml), err, sizeof(err)), 0,
                 "%s\n%s", err, yaml);
    cr_assert_eq(runtime_build(rt, err, sizeof(err)), 0, "%s", err);
    rt->max_connections = MAX_CONNS; /* main's budget, from the file's max_connections */
    rt->pipes_per_worker = FD_BUDGET_PIPES;
    registry_assign(rt);
    cr_assert_eq(worker_init(&w, 0, rt, listen_fd, listen_li, 1, &active_total), 0);
    w.io = &fake_io;
    w.n_listen = 0; /* no listening socket of its own */
}

static void stop(void)
{
    worker_fini(&w);
    runtime_put(rt);
    close(be_listen);
    close(cl_listen);
}

/* A client connected on loopback; *peer is its end, the relay gets the
 * other as if accepted. Returns the slot the relay took for it. */
static struct conn *accept_client(int *peer)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    const struct relay_pool *p = &w.pool;
    uint32_t slot = p->n_free ? p->free_conns[p->n_free - 1] : p->n_used, id = p->next_id;
    int fd;

    a.sin_port = htons((uint16_t)local_port(cl_listen));
    *peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(*peer, (struct sockaddr *)&a, sizeof(a)), 0);
    fd = accept4(cl_listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    cr_assert_geq(fd, 0);
    relay_on_accept(&w, fd, 0);
    /* Refused, it took an id but not the slot: NULL. */
    return p->next_id != id && p->conns[slot].id == p->next_id ? &p->conns[slot] : NULL;
}

static struct stats_listener *listener_stats(void)
{
    return &w.st->l[rt->st_listener[0]];
}

static struct stats_server *server_stats(int s)
{
    return &w.st->s[rt->st_server[0][s]];
}

/* c was freed exactly once, counted once, and gave back what it held. */
static void assert_freed_once(const struct conn *c, uint32_t gen_before)
{
    cr_assert_eq(c->state, CONN_FREE);
    cr_assert_eq(c->fd[SIDE_CLIENT], -1);
    cr_assert_eq(c->fd[SIDE_BACKEND], -1);
    cr_assert_eq(c->gen, gen_before + 1, "freed %u times", c->gen - gen_before);
    cr_assert_eq(w.pool.n_free, 1);
    cr_assert_eq(atomic_load(&active_total), 0);
    cr_assert_eq(stat_get(&w.st->w.active), 0);
    cr_assert_eq(stat_get(&listener_stats()->closed), 1);
    cr_assert_eq(stat_get(&w.st->w.pipes_in_use), 0);
    for (size_t i = 0; i < sizeof(fk.buf_out); i++)
        cr_assert_eq(fk.buf_out[i], 0, "buffer %zu never came back", i);
}

/* Stops the worker: every descriptor the test opened is closed then, so
 * one still open is the relay's, leaked. */
static void finish(int peer_a, int peer_b)
{
    if (peer_a >= 0)
        close(peer_a);
    if (peer_b >= 0)
        close(peer_b);
    stop();
    cr_assert_eq(open_fds(), fds_before, "descriptors leaked");
}

/* A client accepted and its backend connected, both reading. */
static struct conn *open_conn(int *peer)
{
    struct conn *c = accept_client(peer);

    cr_assert_not_null(c);
    cr_assert_eq(c->state, CONN_CONNECTING);
    connect_done(c, 0);
    cr_assert_eq(c->state, CONN_OPEN);
    return c;
}

/* Whether a read of fd ends with a reset. */
static int sees_reset(int fd)
{
    char b[64];
    struct pollfd p = {.fd = fd, .events = POLLIN};

    cr_assert_eq(poll(&p, 1, 2000), 1);
    return recv(fd, b, sizeof(b), 0) == -1 && errno == ECONNRESET;
}

#define NO_PROXY "    proxy_protocol: off\n"
#define TIMEOUTS "    connect_timeout: 1s\n    idle_timeout: 1s\n"
#define TRUSTED                                                                                    \
    "    proxy_protocol_in: v1\n    trusted_sources: [127.0.0.0/8]\n"                              \
    "    header_timeout: 1s\n"
#define ROUTED "    peek_timeout: 1s\n    routes:\n      - { sni: a.example, backend: b }\n"

/* ---- a completion after a cancel ---- */

Test(relay, completion_after_cancel_gives_the_buffer_back)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "", NO_PROXY TIMEOUTS);
    fk.cancel_drops = 0; /* as io_uring: cancelled operations still complete */
    c = open_conn(&peer);
    gen = c->gen;
    cr_assert_eq(PEND(c, SIDE_CLIENT, F_RECV), 1);
    cr_assert_eq(PEND(c, SIDE_BACKEND, F_RECV), 1);
    w.now_ms += 1001;
    relay_timers_run(&w);
    cr_assert_eq(c->state, CONN_CLOSING, "the recvs are still in flight");
    cr_assert_eq(c->inflight, 2);
    recv_bytes(c, SIDE_CLIENT, "late", 4); /* won the race with the cancel */
    cr_assert_eq(fk.buf_puts, 1, "the late buffer went back to the pool");
    cr_assert_eq(c->state, CONN_CLOSING);
    cr_assert_eq(stat_get(&listener_stats()->closed), 0);
    recv_res(c, SIDE_BACKEND, -ECANCELED);
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_IDLE_TIMEOUT]), 1);
    cr_assert_eq(c->dir[SIDE_CLIENT].moved, 0, "bytes after the close are not relayed");
    finish(peer, -1);
}

Test(relay, connect_completing_after_close_does_not_open)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "", NO_PROXY TIMEOUTS);
    fk.cancel_drops = 0;
    c = accept_client(&peer);
    gen = c->gen;
    relay_close_all(&w);
    connect_done(c, 0); /* it succeeded, but too late */
    cr_assert_eq(c->state, CONN_CLOSING);
    cr_assert_eq(stat_get(&server_stats(0)->conns), 0, "not counted as established");
    cr_assert_eq(fk.started[F_RECV], 1, "and nothing more is started");
    recv_res(c, SIDE_CLIENT, -ECANCELED);
    assert_freed_once(c, gen);
    finish(peer, -1);
}

/* ---- short sends ---- */

Test(relay, short_sends_deliver_header_and_bytes_in_order)
{
    static const char hello[] = "hello, backend";
    static const uint8_t v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "", TIMEOUTS);
    c = accept_client(&peer);
    gen = c->gen;
    /* The client's first bytes come before the connect completes: they
     * ride with the header in one send. */
    recv_bytes(c, SIDE_CLIENT, hello, sizeof(hello) - 1);
    cr_assert_eq(fk.started[F_SEND], 0, "nothing is sent before the connect completes");
    connect_done(c, 0);
    cr_assert_gt(c->hdr_len, 16);
    for (int i = 0; PEND(c, SIDE_CLIENT, F_SEND); i++) {
        cr_assert_lt(i, 200);
        send_done(c, SIDE_CLIENT, 3, 0);
    }
    cr_assert_eq(fk.n_sent[SIDE_CLIENT], c->hdr_len + sizeof(hello) - 1);
    cr_assert_eq(memcmp(fk.sent[SIDE_CLIENT], v2_sig, sizeof(v2_sig)), 0);
    cr_assert_eq(memcmp(fk.sent[SIDE_CLIENT] + c->hdr_len, hello, sizeof(hello) - 1), 0);
    cr_assert_eq(fk.buf_puts, 1, "the buffer went back once all of it was sent");
    cr_assert_eq(c->dir[SIDE_CLIENT].buf, BUF_NONE);
    cr_assert_eq(PEND(c, SIDE_CLIENT, F_RECV), 1, "and the client is read again");
    cr_assert_eq(c->dir[SIDE_CLIENT].moved, sizeof(hello) - 1);
    relay_close_all(&w);
    assert_freed_once(c, gen);
    finish(peer, -1);
}

Test(relay, header_sent_alone_when_the_client_is_silent)
{
    struct conn *c;
    int peer;

    start("", "", TIMEOUTS);
    c = open_conn(&peer);
    cr_assert(c->dir[SIDE_CLIENT].flags & DIR_HDR);
    send_done(c, SIDE_CLIENT, 1, 0);
    send_done(c, SIDE_CLIENT, -1, 0);
    cr_assert_eq(fk.n_sent[SIDE_CLIENT], c->hdr_len);
    cr_assert_not(c->dir[SIDE_CLIENT].flags & DIR_HDR);
    cr_assert_eq(PEND(c, SIDE_CLIENT, F_SEND), 0);
    recv_bytes(c, SIDE_CLIENT, "x", 1);
    send_done(c, SIDE_CLIENT, -1, 0);
    cr_assert_eq(fk.n_sent[SIDE_CLIENT], c->hdr_len + 1u);
    cr_assert_eq(fk.sent[SIDE_CLIENT][c->hdr_len], 'x');
    relay_close_all(&w);
    finish(peer, -1);
}

/* ---- EAGAIN storms ---- */

Test(relay, header_readiness_with_nothing_to_read)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.1 198.51.100.2 5555 443\r\n";
    char addr[ADDR_STRLEN];
    struct conn *c;
    int peer;

    start("", TRUSTED, NO_PROXY TIMEOUTS);
    c = accept_client(&peer);
    cr_assert_eq(c->state, CONN_HEADER);
    for (int i = 0; i < 500; i++) {
        poll_done(c, SIDE_CLIENT, F_POLL_IN, POLLIN);
        cr_assert_eq(c->state, CONN_HEADER);
        cr_assert_eq(c->inflight, 1);
        cr_assert_eq(fk.last_drained, 1, "EAGAIN seen: wait for new bytes");
    }
    cr_assert_eq(c->hdr_in_len, 0);
    /* Then the header, three bytes at a time: kept, not relayed. */
    for (size_t off = 0; off < sizeof(hdr) - 1; off += 3) {
        size_t n = sizeof(hdr) - 1 - off < 3 ? sizeof(hdr) - 1 - off : 3;
        cr_assert_eq(send(peer, hdr + off, n, 0), (ssize_t)n);
        usleep(2000);
        poll_done(c, SIDE_CLIENT, F_POLL_IN, POLLIN);
        if (off + n < sizeof(hdr) - 1)
            cr_assert_eq(c->hdr_in_len, off + n);
    }
    cr_assert_eq(c->state, CONN_CONNECTING);
    cr_assert_str_eq(addr_format(&c->peer.sa, addr, sizeof(addr)), "192.0.2.1:5555");
    cr_assert_eq(stat_get(&listener_stats()->header_in), 1);
    relay_close_all(&w);
    finish(peer, -1);
}

Test(relay, splice_readiness_with_nothing_to_read_holds_no_pipe)
{
    struct conn *c;
    int peer, backend;

    start("splice: always\n", "", NO_PROXY TIMEOUTS);
    fk.real_connect = 1;
    c = accept_client(&peer);
    backend = accept4(be_listen, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(backend, 0);
    connect_done(c, 0);
    cr_assert(c->dir[SIDE_BACKEND].flags & DIR_SPLICE);
    for (int i = 0; i < 500; i++) {
        poll_done(c, SIDE_BACKEND, F_POLL_IN, POLLIN);
        cr_assert_eq(PEND(c, SIDE_BACKEND, F_POLL_IN), 1);
        cr_assert_eq(fk.last_drained, 1);
        cr_assert_eq(c->dir[SIDE_BACKEND].pipe, -1, "a pipe is held only while bytes sit in it");
    }
    cr_assert_eq(stat_get(&w.st->w.pipes_in_use), 0);
    cr_assert_eq(c->state, CONN_OPEN);
    relay_close_all(&w);
    finish(peer, backend);
}

/* ---- close while a splice is in flight ---- */

/* A splice from the client to a backend that reads nothing: the pipe is
 * left holding bytes and the relay waits for writability. */
static struct conn *splice_stuck(int *peer, int *backend)
{
    static char chunk[65536];
    struct conn *c;

    start("splice: always\n", "", NO_PROXY TIMEOUTS);
    fk.real_connect = 1;
    c = accept_client(peer);
    *backend = accept4(be_listen, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(*backend, 0);
    fcntl(*peer, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 64 && send(*peer, chunk, sizeof(chunk), 0) > 0; i++)
        ;
    connect_done(c, 0);
    cr_assert(c->dir[SIDE_CLIENT].flags & DIR_SPLICE);
    cr_assert_geq(c->dir[SIDE_CLIENT].pipe, 0);
    cr_assert_gt(c->dir[SIDE_CLIENT].in_pipe, 0);
    cr_assert_eq(PEND(c, SIDE_CLIENT, F_POLL_OUT), 1);
    cr_assert_eq(stat_get(&w.st->w.pipes_in_use), 1);
    return c;
}

Test(relay, close_while_splice_holds_bytes_closes_the_pipe)
{
    int peer, backend, p;
    struct conn *c = splice_stuck(&peer, &backend);
    uint32_t gen = c->gen;

    p = c->dir[SIDE_CLIENT].pipe;
    relay_close_all(&w);
    assert_freed_once(c, gen);
    cr_assert_eq(w.pool.pipes[p].r, -1, "a pipe with unread bytes is closed, not reused");
    cr_assert_eq(stat_get(&listener_stats()->ends[END_STOPPED]), 1);
    cr_assert(sees_reset(peer));
    finish(peer, backend);
}

Test(relay, close_while_splice_waits_completes_later)
{
    int peer, backend;
    struct conn *c = splice_stuck(&peer, &backend);
    uint32_t gen = c->gen;

    fk.cancel_drops = 0;
    relay_close_all(&w);
    cr_assert_eq(c->state, CONN_CLOSING);
    cr_assert_eq(stat_get(&w.st->w.pipes_in_use), 1, "the pipe is kept until nothing is in flight");
    poll_done(c, SIDE_CLIENT, F_POLL_OUT, -ECANCELED);
    cr_assert_eq(c->state, CONN_CLOSING);
    poll_done(c, SIDE_BACKEND, F_POLL_IN, -ECANCELED);
    assert_freed_once(c, gen);
    finish(peer, backend);
}

/* ---- a backend that resets while the PROXY header is queued ---- */

Test(relay, backend_resets_the_header_send)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "", TIMEOUTS);
    c = open_conn(&peer);
    gen = c->gen;
    cr_assert_eq(PEND(c, SIDE_CLIENT, F_SEND), 1, "the header is on its way");
    send_done(c, SIDE_CLIENT, 0, -ECONNRESET);
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&server_stats(0)->no_proxy), 1, "diagnosed: no PROXY expected");
    cr_assert_eq(stat_get(&listener_stats()->ends[END_BACKEND_RESET]), 1);
    cr_assert(sees_reset(peer), "the client is reset too");
    finish(peer, -1);
}

Test(relay, backend_reset_seen_by_recv_while_the_header_waits)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "", TIMEOUTS);
    c = open_conn(&peer);
    gen = c->gen;
    recv_res(c, SIDE_BACKEND, -ECONNRESET);
    cr_assert_eq(PEND(c, SIDE_CLIENT, F_SEND), 0, "the header send was cancelled");
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&server_stats(0)->no_proxy), 1);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_BACKEND_RESET]), 1);
    finish(peer, -1);
}

Test(relay, backend_close_after_the_header_is_diagnosed_once)
{
    struct conn *c;
    int peer;

    start("", "", TIMEOUTS);
    c = open_conn(&peer);
    send_done(c, SIDE_CLIENT, -1, 0);
    recv_res(c, SIDE_BACKEND, 0); /* FIN before a byte */
    cr_assert_eq(stat_get(&server_stats(0)->no_proxy), 1);
    cr_assert(c->dir[SIDE_BACKEND].flags & DIR_DONE, "the FIN is passed on");
    cr_assert_eq(c->timer_kind, TIMER_FIN);
    recv_res(c, SIDE_CLIENT, -ECONNRESET); /* its echo says nothing more */
    cr_assert_eq(stat_get(&server_stats(0)->no_proxy), 1);
    cr_assert_eq(c->state, CONN_FREE);
    finish(peer, -1);
}

/* ---- timers in every state ---- */

/* Runs the timers just before and just after c's timeout of ms. */
static void expire(const struct conn *c, uint32_t ms, int state)
{
    w.now_ms += ms - 1;
    relay_timers_run(&w);
    cr_assert_eq(c->state, state, "nothing expires early");
    w.now_ms += 2;
    relay_timers_run(&w);
}

Test(relay, timer_in_header)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", TRUSTED, NO_PROXY TIMEOUTS);
    c = accept_client(&peer);
    gen = c->gen;
    cr_assert_eq(c->state, CONN_HEADER);
    expire(c, 1000, CONN_HEADER);
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&listener_stats()->header_timeouts), 1);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_HEADER_TIMEOUT]), 1);
    finish(peer, -1);
}

Test(relay, timer_in_peek)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", ROUTED, NO_PROXY TIMEOUTS);
    c = accept_client(&peer);
    gen = c->gen;
    cr_assert_eq(c->state, CONN_PEEK);
    cr_assert_eq(send(peer, "\x16\x03\x01", 3, 0), 3); /* a ClientHello's first bytes */
    usleep(2000);
    poll_done(c, SIDE_CLIENT, F_POLL_IN, POLLIN);
    cr_assert_eq(c->state, CONN_PEEK, "waits for the rest");
    expire(c, 1000, CONN_PEEK);
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&listener_stats()->peek_timeouts), 1);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_PEEK_TIMEOUT]), 1);
    finish(peer, -1);
}

Test(relay, timer_in_connecting_retries_another_server)
{
    struct conn *c;
    int peer;

    start("", "", NO_PROXY TIMEOUTS);
    fk.abandon_now = 1; /* as epoll: nothing of the connect is in the kernel */
    c = accept_client(&peer);
    cr_assert_eq(c->server, 0);
    expire(c, 1000, CONN_CONNECTING);
    cr_assert_eq(c->state, CONN_CONNECTING);
    cr_assert_eq(c->server, 1, "the other server");
    cr_assert_eq(fk.started[F_CONNECT], 2);
    cr_assert_eq(c->inflight, 2, "its connect and the client's recv");
    cr_assert_eq(stat_get(&server_stats(0)->fails[FAIL_TIMEOUT]), 1);
    cr_assert_eq(stat_get(&w.st->b[rt->st_backend[0]].retries), 1);
    expire(c, 1000, CONN_CONNECTING); /* both tried: the end */
    cr_assert_eq(c->state, CONN_FREE);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_CONNECT_TIMEOUT]), 1);
    finish(peer, -1);
}

Test(relay, timer_in_connecting_waits_for_the_abandoned_connect)
{
    struct conn *c;
    int peer;

    start("", "", NO_PROXY TIMEOUTS);
    fk.abandon_now = 0; /* as io_uring: the connect completes with -ECANCELED */
    c = accept_client(&peer);
    expire(c, 1000, CONN_CONNECTING);
    cr_assert(c->flags & CONN_RETRYING);
    cr_assert_eq(fk.started[F_CONNECT], 1, "no second connect before the first ends");
    connect_done(c, -ECANCELED);
    cr_assert_eq(fk.started[F_CONNECT], 2);
    cr_assert_eq(c->server, 1);
    cr_assert_not(c->flags & CONN_RETRYING);
    connect_done(c, 0);
    cr_assert_eq(c->state, CONN_OPEN);
    relay_close_all(&w);
    finish(peer, -1);
}

Test(relay, timer_in_open)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "", NO_PROXY TIMEOUTS);
    c = open_conn(&peer);
    gen = c->gen;
    cr_assert_eq(c->timer_kind, TIMER_IDLE);
    expire(c, 1000, CONN_OPEN);
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_IDLE_TIMEOUT]), 1);
    finish(peer, -1);
}

Test(relay, timer_when_half_closed)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "", NO_PROXY TIMEOUTS);
    c = open_conn(&peer);
    gen = c->gen;
    recv_res(c, SIDE_CLIENT, 0);
    cr_assert_eq(c->timer_kind, TIMER_FIN);
    expire(c, 1000, CONN_OPEN);
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_CLIENT_CLOSED]), 1);
    finish(peer, -1);
}

Test(relay, no_timer_fires_while_closing)
{
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "", NO_PROXY TIMEOUTS);
    fk.cancel_drops = 0;
    c = open_conn(&peer);
    gen = c->gen;
    relay_close_all(&w);
    cr_assert_eq(c->state, CONN_CLOSING);
    cr_assert_eq(c->timer_kind, TIMER_NONE);
    w.now_ms += 3600 * 1000;
    relay_timers_run(&w);
    cr_assert_eq(c->state, CONN_CLOSING);
    cr_assert_eq(fk.cancels, 1, "closed once");
    recv_res(c, SIDE_CLIENT, -ECANCELED);
    recv_res(c, SIDE_BACKEND, -ECANCELED);
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_STOPPED]), 1);
    finish(peer, -1);
}

/* ---- untrusted headers and the per-source limit ---- */

Test(relay, untrusted_client_sending_a_header_is_reset)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.1 198.51.100.2 5555 443\r\n";
    struct conn *c;
    uint32_t gen;
    int peer;

    start("", "    proxy_protocol_in: v1\n    trusted_sources: [10.0.0.0/8]\n", NO_PROXY TIMEOUTS);
    c = accept_client(&peer);
    gen = c->gen;
    cr_assert(c->flags & CONN_UNTRUSTED);
    cr_assert_eq(c->state, CONN_CONNECTING, "not trusted: no header is waited for");
    recv_bytes(c, SIDE_CLIENT, hdr, sizeof(hdr) - 1);
    assert_freed_once(c, gen);
    cr_assert_eq(stat_get(&listener_stats()->header_untrusted), 1);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_UNTRUSTED_HEADER]), 1);
    cr_assert(sees_reset(peer));
    finish(peer, -1);
}

Test(relay, second_client_from_one_address_over_the_limit)
{
    struct conn *a, *b;
    int pa, pb;

    start("", "    max_connections_per_source: 1\n", NO_PROXY TIMEOUTS);
    a = accept_client(&pa);
    b = accept_client(&pb);
    cr_assert_eq(a->state, CONN_CONNECTING);
    cr_assert_eq(b->state, CONN_FREE, "refused at once");
    cr_assert_eq(fk.attaches, 1, "the refused one never joined the back end");
    cr_assert_eq(stat_get(&listener_stats()->refused_source), 1);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_SOURCE_LIMIT]), 1);
    cr_assert(sees_reset(pb));
    relay_close_all(&w);
    close(pb);
    b = accept_client(&pb);
    cr_assert_eq(b->state, CONN_CONNECTING, "the first one's place is free again");
    cr_assert_eq(stat_get(&listener_stats()->refused_source), 1);
    relay_close_all(&w);
    finish(pa, pb);
}

/* ---- the buffer pool running dry ---- */

Test(relay, starved_direction_waits_for_a_buffer_and_is_woken)
{
    struct conn *c;
    int peer;

    start("", "", NO_PROXY TIMEOUTS);
    c = open_conn(&peer);
    recv_res(c, SIDE_CLIENT, -ENOBUFS);
    cr_assert(c->dir[SIDE_CLIENT].flags & DIR_STARVED);
    cr_assert_eq(w.pool.n_starved, 1);
    cr_assert_eq(PEND(c, SIDE_CLIENT, F_RECV), 0, "no recv while no buffer is free");
    recv_bytes(c, SIDE_BACKEND, "pong", 4); /* the backend's bytes hold a buffer ... */
    send_done(c, SIDE_BACKEND, -1, 0);      /* ... until they are sent */
    cr_assert_eq(fk.buf_puts, 1);
    cr_assert_not(c->dir[SIDE_CLIENT].flags & DIR_STARVED);
    cr_assert_eq(w.pool.n_starved, 0);
    cr_assert_eq(PEND(c, SIDE_CLIENT, F_RECV), 1, "the client is read again");
    relay_close_all(&w);
    finish(peer, -1);
}

Test(relay, starved_direction_closing_leaves_the_queue)
{
    struct conn *a, *b;
    uint32_t gen;
    int pa, pb;

    start("", "", NO_PROXY TIMEOUTS);
    a = open_conn(&pa);
    gen = a->gen;
    b = open_conn(&pb);
    recv_res(a, SIDE_CLIENT, -ENOBUFS);
    recv_res(a, SIDE_BACKEND, -ENOBUFS);
    cr_assert_eq(w.pool.n_starved, 2);
    w.now_ms += 1001; /* a times out; b would too, but its bytes restart its timer */
    recv_bytes(b, SIDE_CLIENT, "ping", 4);
    relay_timers_run(&w);
    cr_assert_eq(a->state, CONN_FREE);
    cr_assert_eq(b->state, CONN_OPEN);
    cr_assert_eq(w.pool.n_starved, 0, "its two entries left with it");
    send_done(b, SIDE_CLIENT, -1, 0); /* b's buffer comes back ... */
    cr_assert_eq(fk.buf_puts, 1);
    cr_assert_eq(a->gen, gen + 1, "... and wakes nothing of the freed a");
    cr_assert_eq(a->state, CONN_FREE);
    cr_assert_eq(fk.started[F_RECV], 5, "two recvs each at the start, b's after its send");
    relay_close_all(&w);
    finish(pa, pb);
}

/* ---- the access log, for a relayed client and a refused one ---- */

Test(relay, access_log_lines_for_closed_and_refused_clients)
{
    char path[] = "/tmp/test_relay_alog.XXXXXX", err[256] = "", line[1024];
    struct access_log *al;
    struct conn *c[MAX_CONNS];
    int peer[MAX_CONNS + 1], fd, lines = 0, refused = 0, stopped = 0;
    FILE *f;

    start("", "", NO_PROXY TIMEOUTS);
    fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    al = access_log_start(path, ACCESS_LOG_TEXT, 1, 0x1234, err, sizeof(err));
    cr_assert_not_null(al, "%s", err);
    w.alog = access_log_ring(al, 0);
    for (int i = 0; i < MAX_CONNS; i++)
        c[i] = accept_client(&peer[i]);
    cr_assert_null(accept_client(&peer[MAX_CONNS]));
    relay_close_all(&w);
    access_log_stop(al);
    w.alog = NULL;
    f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f)) {
        lines++;
        refused += strstr(line, "end=refused_limit") != NULL;
        stopped += strstr(line, "end=stopped") != NULL;
        cr_assert_not_null(strstr(line, "client=127.0.0.1:"), "%s", line);
    }
    fclose(f);
    unlink(path);
    cr_assert_eq(lines, MAX_CONNS + 1);
    cr_assert_eq(refused, 1, "the refused client has a line of its own");
    cr_assert_eq(stopped, MAX_CONNS);
    for (int i = 0; i < MAX_CONNS; i++)
        cr_assert_eq(c[i]->state, CONN_FREE);
    for (int i = 0; i < MAX_CONNS; i++)
        close(peer[i]);
    finish(peer[MAX_CONNS], -1);
}

/* ---- the slot pool ---- */

Test(relay, full_pool_resets_at_once_and_counts)
{
    struct conn *c[MAX_CONNS];
    int peer[MAX_CONNS + 1];

    start("", "", NO_PROXY TIMEOUTS);
    for (int i = 0; i < MAX_CONNS; i++)
        cr_assert_not_null(c[i] = accept_client(&peer[i]));
    cr_assert_null(accept_client(&peer[MAX_CONNS]), "over max_connections");
    cr_assert_eq(stat_get(&listener_stats()->refused), 1);
    cr_assert_eq(stat_get(&listener_stats()->ends[END_REFUSED_LIMIT]), 1);
    cr_assert_eq(atomic_load(&active_total), MAX_CONNS);
    cr_assert(sees_reset(peer[MAX_CONNS]));
    relay_close_all(&w);
    for (int i = 0; i < MAX_CONNS; i++)
        cr_assert_eq(c[i]->state, CONN_FREE);
    cr_assert_eq(w.pool.n_free, MAX_CONNS);
    cr_assert_eq(atomic_load(&active_total), 0);
    for (int i = 0; i <= MAX_CONNS; i++)
        close(peer[i]);
    finish(-1, -1);
}
