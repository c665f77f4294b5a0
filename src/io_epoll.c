/* epoll back end, for where io_uring is unavailable (seccomp, the
 * kernel.io_uring_disabled sysctl). Each socket is registered once,
 * edge-triggered; the back end remembers its readiness and runs a pending
 * operation when its socket is ready. Operations run from a run queue, never
 * from inside the call that starts them, so completions never recurse. */
#include "io.h"

#include "conn.h"
#include "log.h"
#include "syserr.h"
#include "worker.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define ACCEPT_BATCH 64
#define DRAIN_BATCH 4096

/* Per-socket state in conn->io.flags[side]. */
#define RDY_IN 0x001
#define RDY_OUT 0x002
#define HUP 0x004      /* peer closed or error: reads never block again */
#define W_RECV 0x008   /* dir side: recv wanted */
#define W_PIN 0x010    /* dir side: readability wanted */
#define W_SEND 0x020   /* dir !side: send wanted */
#define W_POUT 0x040   /* dir !side: writability wanted */
#define W_CONN 0x080   /* connect in progress */
#define CONN_NOW 0x100 /* connect finished inside connect(2): result in io.res */
#define QUEUED 0x200
#define WANTS (W_RECV | W_PIN | W_SEND | W_POUT | W_CONN)

#define LISTEN_BIT (1ull << 63)

struct epoll_state {
    int ep;
    uint64_t *runq; /* (gen << 32 | index << 1 | side) */
    size_t runq_len, runq_cap;
    uint16_t *free_bufs;
    uint32_t n_free_bufs;
    uint8_t accept_armed[RUNTIME_MAX_BINDS];
};

static inline struct epoll_state *st_of(struct worker *w)
{
    return w->io_state;
}

static uint64_t tag(struct worker *w, struct conn *c, int side)
{
    return (uint64_t)c->gen << 32 | (uint64_t)conn_index(w, c) << 1 | (uint64_t)side;
}

/* gcc 12's analyzer reports the realloc below as a leak of the old queue;
 * realloc frees it on success and the failure aborts. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
static void runq_push(struct worker *w, struct conn *c, int side)
{
    struct epoll_state *st = st_of(w);

    if (c->io.flags[side] & QUEUED)
        return;
    if (st->runq_len == st->runq_cap) {
        size_t cap = st->runq_cap * 2;
        uint64_t *q = realloc(st->runq, cap * sizeof(*q));
        if (!q) {
            log_error("worker %d: out of memory for the run queue", w->id);
            abort();
        }
        st->runq = q;
        st->runq_cap = cap;
    }
    c->io.flags[side] |= QUEUED;
    st->runq[st->runq_len++] = tag(w, c, side);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* Queues the socket if something it waits for can run now. */
static void kick(struct worker *w, struct conn *c, int side)
{
    uint16_t f = c->io.flags[side];

    if (((f & RDY_IN) && (f & (W_RECV | W_PIN))) ||
        ((f & RDY_OUT) && (f & (W_SEND | W_POUT | W_CONN))) || (f & CONN_NOW))
        runq_push(w, c, side);
}

static int ep_init(struct worker *w)
{
    struct epoll_state *st = calloc(1, sizeof(*st));

    if (!st)
        return -ENOMEM;
    st->ep = epoll_create1(EPOLL_CLOEXEC);
    st->runq_cap = 1024;
    st->runq = malloc(st->runq_cap * sizeof(*st->runq));
    st->free_bufs = malloc(w->pool.n_bufs * sizeof(*st->free_bufs));
    if (st->ep == -1 || !st->runq || !st->free_bufs) {
        int err = st->ep == -1 ? -errno : -ENOMEM;
        if (st->ep >= 0)
            close(st->ep);
        free(st->runq);
        free(st->free_bufs);
        free(st);
        return err;
    }
    for (uint32_t i = 0; i < w->pool.n_bufs; i++)
        st->free_bufs[i] = (uint16_t)(w->pool.n_bufs - 1 - i);
    st->n_free_bufs = w->pool.n_bufs;
    w->io_state = st;
    return 0;
}

static void ep_fini(struct worker *w)
{
    struct epoll_state *st = st_of(w);

    if (!st)
        return;
    close(st->ep);
    free(st->runq);
    free(st->free_bufs);
    free(st);
    w->io_state = NULL;
}

static void ep_accept_start(struct worker *w)
{
    struct epoll_state *st = st_of(w);

    for (int i = 0; i < w->n_listen; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LISTEN_BIT | (uint64_t)i};
        if (st->accept_armed[i])
            continue;
        if (epoll_ctl(st->ep, EPOLL_CTL_ADD, w->listen_fd[i], &ev) == 0)
            st->accept_armed[i] = 1;
    }
}

static void ep_accept_stop(struct worker *w)
{
    struct epoll_state *st = st_of(w);

    for (int i = 0; i < w->n_listen; i++) {
        if (st->accept_armed[i])
            (void)epoll_ctl(st->ep, EPOLL_CTL_DEL, w->listen_fd[i], NULL);
        st->accept_armed[i] = 0;
    }
}

static void ep_attach(struct worker *w, struct conn *c, int side)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u64 = tag(w, c, side),
    };

    /* Cannot fail for a fresh socket short of ENOMEM; then the connection
     * stalls until its timer closes it. */
    if (epoll_ctl(st_of(w)->ep, EPOLL_CTL_ADD, c->fd[side], &ev) == -1)
        log_rl(LOG_LEVEL_ERROR, "c%u.%u: epoll_ctl: %s", w->id, c->id, strerror(errno));
}

static void ep_socket(struct worker *w, struct conn *c, int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    relay_on_socket(w, c, fd >= 0 ? fd : -errno);
}

static void ep_connect(struct worker *w, struct conn *c, const struct sockaddr *sa)
{
    static const int one = 1;
    uint16_t *f = &c->io.flags[SIDE_BACKEND];

    if (sa->sa_family != AF_UNIX)
        (void)setsockopt(c->fd[SIDE_BACKEND], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *f |= W_CONN;
    if (connect(c->fd[SIDE_BACKEND], sa, addr_len(sa)) == 0) {
        c->io.res[SIDE_BACKEND] = 0;
        *f |= CONN_NOW;
    } else if (errno != EINPROGRESS) {
        c->io.res[SIDE_BACKEND] = -errno;
        *f |= CONN_NOW;
    }
    /* Registered only now: a socket not yet connecting reports itself
     * writable and hung up, which would be taken for the connect's end. */
    ep_attach(w, c, SIDE_BACKEND);
    kick(w, c, SIDE_BACKEND);
}

/* Nothing of a connect is in the kernel: forget the socket's state. */
static int ep_connect_abandon(struct worker *w, struct conn *c)
{
    c->io.flags[SIDE_BACKEND] = 0;
    return 1;
}

/* epoll_ctl(DEL) takes effect at once: nothing is left in flight. */
static int ep_accept_idle(struct worker *w)
{
    return 1;
}

static void ep_recv(struct worker *w, struct conn *c, int d)
{
    c->io.flags[d] |= W_RECV;
    kick(w, c, d);
}

/* Nothing is read ahead here: splice may start at any time. */
static int ep_recv_idle(struct worker *w, struct conn *c, int d)
{
    return 1;
}

static void ep_send(struct worker *w, struct conn *c, int d)
{
    c->io.flags[!d] |= W_SEND;
    kick(w, c, !d);
}

static void ep_poll_in(struct worker *w, struct conn *c, int d, int drained)
{
    uint16_t *f = &c->io.flags[d];

    if (drained && !(*f & HUP))
        *f &= (uint16_t)~RDY_IN;
    *f |= W_PIN;
    kick(w, c, d);
}

static void ep_poll_out(struct worker *w, struct conn *c, int d)
{
    c->io.flags[!d] &= (uint16_t)~RDY_OUT;
    c->io.flags[!d] |= W_POUT;
    kick(w, c, !d);
}

/* Nothing is in the kernel: every pending operation is dropped outright. */
static int ep_cancel(struct worker *w, struct conn *c)
{
    int dropped = 0;

    for (int s = 0; s < 2; s++) {
        uint16_t f = c->io.flags[s] & WANTS;
        dropped += __builtin_popcount(f);
        c->io.flags[s] &= (uint16_t) ~(WANTS | CONN_NOW);
    }
    return dropped;
}

static void ep_buf_put(struct worker *w, uint16_t bid)
{
    struct epoll_state *st = st_of(w);

    st->free_bufs[st->n_free_bufs++] = bid;
}

static void do_connect(struct worker *w, struct conn *c)
{
    uint16_t *f = &c->io.flags[SIDE_BACKEND];
    int err = 0, res;
    socklen_t len = sizeof(err);

    if (*f & CONN_NOW)
        res = c->io.res[SIDE_BACKEND];
    else if (getsockopt(c->fd[SIDE_BACKEND], SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        res = -errno;
    else
        res = -err;
    if (!res && !(*f & CONN_NOW)) {
        /* Writability left over from a socket this connection retried away
         * from says nothing about this one: connected only if it has a peer. */
        union sockaddr_inet peer;
        socklen_t plen = sizeof(peer);
        if (getpeername(c->fd[SIDE_BACKEND], &peer.sa, &plen) == -1 && errno == ENOTCONN) {
            *f &= (uint16_t)~RDY_OUT;
            return;
        }
    }
    *f &= (uint16_t) ~(W_CONN | CONN_NOW);
    relay_on_connect(w, c, res);
}

static void do_recv(struct worker *w, struct conn *c, int side)
{
    struct epoll_state *st = st_of(w);
    uint16_t *f = &c->io.flags[side];
    uint16_t bid;
    ssize_t n;

    if (st->n_free_bufs == 0) {
        *f &= (uint16_t)~W_RECV;
        relay_on_recv(w, c, side, -ENOBUFS, BUF_NONE);
        return;
    }
    bid = st->free_bufs[st->n_free_bufs - 1];
    n = recv(c->fd[side], buf_data(w, bid) + BUF_HEADROOM, BUF_SIZE, 0);
    if (n == -1 && errno == EAGAIN) {
        *f &= (uint16_t)~RDY_IN;
        return;
    }
    /* A short read drained the socket; new bytes raise a new edge. */
    if (n >= 0 && n < BUF_SIZE && !(*f & HUP))
        *f &= (uint16_t)~RDY_IN;
    *f &= (uint16_t)~W_RECV;
    if (n > 0) {
        st->n_free_bufs--;
        relay_on_recv(w, c, side, (int)n, bid);
    } else {
        relay_on_recv(w, c, side, n == 0 ? 0 : -errno, BUF_NONE);
    }
}

static void do_send(struct worker *w, struct conn *c, int side)
{
    uint16_t *f = &c->io.flags[side];
    const void *p;
    size_t len;
    ssize_t n;

    relay_send_span(w, c, !side, &p, &len);
    n = send(c->fd[side], p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == -1 && errno == EAGAIN) {
        *f &= (uint16_t)~RDY_OUT;
        return;
    }
    if (n >= 0 && (size_t)n < len)
        *f &= (uint16_t)~RDY_OUT;
    *f &= (uint16_t)~W_SEND;
    relay_on_send(w, c, !side, n == -1 ? -errno : (int)n);
}

/* Runs what socket side of c waits for and can now do. Each relay call may
 * close c, which clears its wants, so the checks after it see nothing. */
static void run_ops(struct worker *w, struct conn *c, int side)
{
    uint16_t *f = &c->io.flags[side];

    if ((*f & W_CONN) && (*f & (RDY_OUT | CONN_NOW)))
        do_connect(w, c);
    if ((*f & W_SEND) && (*f & RDY_OUT))
        do_send(w, c, side);
    if ((*f & W_POUT) && (*f & RDY_OUT)) {
        *f &= (uint16_t)~W_POUT;
        relay_on_poll(w, c, !side, POLLOUT);
    }
    if ((*f & W_RECV) && (*f & RDY_IN))
        do_recv(w, c, side);
    if ((*f & W_PIN) && (*f & RDY_IN)) {
        *f &= (uint16_t)~W_PIN;
        relay_on_poll(w, c, side, POLLIN);
    }
}

static void drain_runq(struct worker *w)
{
    struct epoll_state *st = st_of(w);
    size_t i = 0;

    /* Entries added while draining are run too, up to a batch, so one busy
     * connection cannot keep the loop from epoll_wait forever. */
    for (; i < st->runq_len && i < DRAIN_BATCH; i++) {
        uint64_t t = st->runq[i];
        int side = (int)(t & 1);
        struct conn *c = conn_lookup(w, (uint32_t)(t >> 1) & 0x7fffffff, (uint32_t)(t >> 32));
        if (!c)
            continue;
        c->io.flags[side] &= (uint16_t)~QUEUED;
        run_ops(w, c, side);
    }
    memmove(st->runq, st->runq + i, (st->runq_len - i) * sizeof(*st->runq));
    st->runq_len -= i;
}

static void on_listen_event(struct worker *w, int li)
{
    for (int i = 0; i < ACCEPT_BATCH && !w->accept_paused; i++) {
        int fd = accept4(w->listen_fd[li], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            relay_on_accept(w, fd, li);
            continue;
        }
        if (err_out_of_resources(errno))
            relay_on_accept_error(w, errno);
        else if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR)
            log_rl(LOG_LEVEL_WARN, "worker %d: accept: %s", w->id, strerror(errno));
        return;
    }
}

static void on_event(struct worker *w, const struct epoll_event *ev)
{
    uint64_t t = ev->data.u64;
    int side = (int)(t & 1);
    struct conn *c;
    uint16_t *f;

    if (t & LISTEN_BIT) {
        on_listen_event(w, (int)(t & 0xff));
        return;
    }
    c = conn_lookup(w, (uint32_t)(t >> 1) & 0x7fffffff, (uint32_t)(t >> 32));
    if (!c)
        return;
    f = &c->io.flags[side];
    if (ev->events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        *f |= HUP;
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        *f |= RDY_IN;
    if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        *f |= RDY_OUT;
    kick(w, c, side);
}

static void ep_run(struct worker *w)
{
    struct epoll_state *st = st_of(w);
    struct epoll_event evs[MAX_EVENTS];

    while (atomic_load_explicit(&w->stop, memory_order_relaxed) != 1) {
        int n = epoll_wait(st->ep, evs, MAX_EVENTS, st->runq_len ? 0 : worker_ms_to_tick(w));

        if (n == -1 && errno != EINTR)
            log_rl(LOG_LEVEL_ERROR, "worker %d: epoll_wait: %s", w->id, strerror(errno));
        worker_clock(w);
        for (int i = 0; i < n; i++)
            on_event(w, &evs[i]);
        drain_runq(w);
        worker_tick(w);
    }
}

static void ep_close(struct worker *w, int fd, int reset)
{
    static const struct linger rst = {.l_onoff = 1, .l_linger = 0};

    if (reset)
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
    close(fd);
}

const struct io_backend io_epoll_backend = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .run = ep_run,
    .accept_start = ep_accept_start,
    .accept_stop = ep_accept_stop,
    .accept_idle = ep_accept_idle,
    .attach = ep_attach,
    .socket = ep_socket,
    .connect = ep_connect,
    .connect_abandon = ep_connect_abandon,
    .recv = ep_recv,
    .recv_idle = ep_recv_idle,
    .send = ep_send,
    .poll_in = ep_poll_in,
    .poll_out = ep_poll_out,
    .cancel = ep_cancel,
    .buf_put = ep_buf_put,
    .close = ep_close,
};
