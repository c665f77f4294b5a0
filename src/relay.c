/* Connection state machine: accept, connect, moving bytes, close. Every
 * direction is in one of two modes: copy (recv into a pooled buffer, send
 * it, recv again: never more than one buffer per direction, which is the
 * backpressure) or splice (readiness, then splice(2) through a pooled pipe
 * held only while bytes sit in it). The handshake before the backend
 * connection is relay_handshake.c's; counters and diagnosis are
 * relay_account.c's. */
#include "relay.h"

#include "accepting.h"
#include "checker.h"
#include "log.h"
#include "relay_account.h"
#include "relay_handshake.h"
#include "relay_pool.h"
#include "srclimit.h"
#include "syserr.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Auto mode looks at a direction's reads in windows of this many bytes: if
 * they came in reads of SPLICE_MIN_READ or more on average, it is a bulk
 * stream and moves to splice; request/response traffic never does. */
#define SPLICE_WINDOW (256 * 1024U)
#define SPLICE_MIN_READ (8 * 1024U)
/* Bytes one splice pump moves before yielding to other connections. */
#define SPLICE_BUDGET (1024 * 1024U)
#define SPLICE_FLAGS (SPLICE_F_NONBLOCK | SPLICE_F_MOVE)

static const char *const side_name[] = {"client", "backend"};

static void dir_next(struct worker *w, struct conn *c, int d);

/* ---- buffers ---- */

/* Gives a buffer back; a direction that waited for one goes on. */
static void buf_give_back(struct worker *w, uint16_t bid)
{
    int d;
    struct conn *c = buf_put(w, bid, &d);

    if (c)
        dir_next(w, c, d);
}

static void buf_release(struct worker *w, struct dir *dir)
{
    if (dir->buf == BUF_NONE)
        return;
    buf_give_back(w, dir->buf);
    dir->buf = BUF_NONE;
    dir->len = 0;
}

/* ---- starting operations: every one is counted in c->inflight ---- */

static void op_recv(struct worker *w, struct conn *c, int d)
{
    c->dir[d].flags |= DIR_RECV;
    c->inflight++;
    w->io->recv(w, c, d);
}

static void op_send(struct worker *w, struct conn *c, int d)
{
    c->dir[d].flags |= DIR_SEND;
    c->inflight++;
    w->io->send(w, c, d);
}

static void op_poll_in(struct worker *w, struct conn *c, int d, int drained)
{
    c->dir[d].flags |= DIR_RECV;
    c->inflight++;
    w->io->poll_in(w, c, d, drained);
}

static void op_poll_out(struct worker *w, struct conn *c, int d)
{
    c->dir[d].flags |= DIR_SEND;
    c->inflight++;
    w->io->poll_out(w, c, d);
}

/* ---- closing ---- */

/* Gives c's server back (its open count). */
static void conn_drop_server(struct worker *w, struct conn *c)
{
    if (c->server < 0)
        return;
    atomic_fetch_sub_explicit(&conn_rt(w, c)->pools[c->be_index].m[c->server].active, 1,
                              memory_order_relaxed);
    c->server = -1;
}

/* The one place a connection's sockets, buffers, pipes and slot go back. */
static void conn_free(struct worker *w, struct conn *c)
{
    account_conn_end(w, c);
    if (c->flags & CONN_SRC_COUNTED)
        srclimit_put(c->src_key);
    conn_drop_server(w, c);
    for (int d = 0; d < 2; d++) {
        buf_release(w, &c->dir[d]);
        pipe_release(w, &c->dir[d]);
    }
    for (int s = 0; s < 2; s++) {
        if (c->fd[s] >= 0)
            w->io->close(w, c->fd[s], c->reset);
        c->fd[s] = -1;
    }
    conn_discard(c);
    conn_slot_put(w, c);
}

/* An operation of a closing connection completed. */
static void conn_op_done(struct worker *w, struct conn *c)
{
    if (--c->inflight == 0 && c->state == CONN_CLOSING)
        conn_free(w, c);
}

void conn_close(struct worker *w, struct conn *c, int abort)
{
    if (c->state == CONN_CLOSING || c->state == CONN_FREE)
        return;
    c->reset = (uint8_t)(abort != 0); /* the sockets close once nothing is in flight */
    log_debug("c%u.%u closed%s: %llu bytes from client, %llu from backend", w->id, c->id,
              abort ? " with reset" : "", (unsigned long long)c->dir[0].moved,
              (unsigned long long)c->dir[1].moved);
    c->state = CONN_CLOSING;
    unstarve(w, c, 0);
    unstarve(w, c, 1);
    timer_set(w, c, TIMER_NONE);
    c->inflight = (uint8_t)(c->inflight - w->io->cancel(w, c));
    if (c->inflight == 0)
        conn_free(w, c);
}

/* An error on side: reset both. A backend failing before its first byte,
 * whether a recv, a send or a splice saw it first, may be refusing the
 * PROXY header. */
static void conn_abort(struct worker *w, struct conn *c, int side, int err)
{
    if (side == SIDE_BACKEND && c->dir[SIDE_BACKEND].moved == 0)
        account_first_event(w, c, SIDE_BACKEND, -err, NULL);
    log_debug("c%u.%u %s: %s: resetting the other side", w->id, c->id, side_name[side],
              strerror(err));
    conn_end(c, side == SIDE_CLIENT ? END_CLIENT_RESET : END_BACKEND_RESET);
    conn_close(w, c, 1);
}

/* ---- connect ---- */

/* Takes a server of c's backend that is up, has room, and was not tried
 * yet. Returns 0, or -1 (logged, counted) when there is none. */
static int conn_pick_server(struct worker *w, struct conn *c)
{
    struct pool *p = &conn_rt(w, c)->pools[c->be_index];
    int s = pool_pick(p, &conn_gen(w, c)->relay.rr[c->be_index], &c->peer.sa, &c->tried);

    if (s < 0) {
        stat_inc(&st_backend(w, c)->no_server);
        conn_end(c, END_NO_SERVER);
        log_rl(LOG_LEVEL_WARN,
               "c%u.%u backend %s: no server to take the connection (%d "
               "servers: down, full, or tried already)",
               w->id, c->id, conn_backend(w, c)->name, p->n);
        return -1;
    }
    c->server = (int16_t)s;
    pool_tried_add(&c->tried, s);
    atomic_fetch_add_explicit(&p->m[s].active, 1, memory_order_relaxed);
    return 0;
}

/* No descriptor for c's backend socket: c waits for one, up to its
 * connect timeout, rather than being dropped, and accepting pauses so no
 * more clients are taken meanwhile. Returns 0 if the wait list is full. */
static int conn_wait_fd(struct worker *w, struct conn *c, int err)
{
    if (!(w->accept_paused & ACCEPT_PAUSE_ERROR))
        accepting_back_off(w);
    if (fd_wait_add(w, c) < 0)
        return 0;
    log_rl(LOG_LEVEL_WARN, "c%u.%u: backend socket: %s: waiting for a descriptor", w->id, c->id,
           strerror(err));
    c->tried.n--; /* its server, the last one added, was not tried: no connect was made */
    conn_drop_server(w, c);
    c->state = CONN_CONNECTING;
    if (!(c->flags & CONN_WAIT_FD)) /* the wait is bounded from its start */
        timer_set(w, c, TIMER_CONNECT);
    c->flags |= CONN_WAIT_FD;
    return 1;
}

/* Opens the connection to a server of c's backend; the header is built.
 * The socket comes first (relay_on_socket), then the connect. */
static void conn_connect(struct worker *w, struct conn *c)
{
    if (conn_pick_server(w, c) < 0) {
        conn_close(w, c, 0);
        return;
    }
    if (!(c->flags & CONN_WAIT_FD)) /* a wait for a descriptor is bounded from its start */
        timer_set(w, c, TIMER_CONNECT);
    c->state = CONN_CONNECTING;
    c->inflight++;
    w->io->socket(w, c, runtime_server_addr(conn_rt(w, c), c->be_index, c->server)->sa_family);
}

void relay_on_socket(struct worker *w, struct conn *c, int res)
{
    if (c->state == CONN_CLOSING) {
        if (res >= 0)
            w->io->close(w, res, 0);
        conn_op_done(w, c);
        return;
    }
    c->inflight--;
    if (res < 0) {
        if (err_out_of_resources(-res) && conn_wait_fd(w, c, -res))
            return;
        conn_end(c, END_LOCAL_ERROR);
        log_rl(LOG_LEVEL_WARN, "c%u.%u: backend socket: %s", w->id, c->id, strerror(-res));
        conn_close(w, c, 0);
        return;
    }
    c->fd[SIDE_BACKEND] = res;
    c->flags &= (uint8_t)~CONN_WAIT_FD;
    c->t_connect = conn_elapsed(c);
    timer_set(w, c, TIMER_CONNECT);
    c->inflight++;
    w->io->connect(w, c, runtime_server_addr(conn_rt(w, c), c->be_index, c->server));
    /* Read early so the first client bytes can ride with the header. */
    dir_next(w, c, SIDE_CLIENT);
}

void relay_fd_wait_retry(struct worker *w)
{
    struct fd_waiter waiting[FD_WAIT_MAX];
    uint32_t n, i;

    if (!w->pool.n_fd_wait)
        return;
    n = fd_wait_take(w, waiting);
    for (i = 0; i < n; i++) {
        struct conn *c = &w->pool.conns[waiting[i].index];
        if (c->gen != waiting[i].gen || c->state != CONN_CONNECTING || !(c->flags & CONN_WAIT_FD))
            continue; /* closed meanwhile */
        conn_connect(w, c);
        if (w->pool.n_fd_wait)
            break; /* still none: the rest keep their places */
    }
    if (i < n)
        fd_wait_requeue(w, waiting + i + 1, n - i - 1);
}

/* Whether another server may be tried: the connect failed in a way
 * another server may not, nothing was written to this one (nothing is
 * before the connect completes), and the backend allows more tries. */
static int conn_may_retry(const struct worker *w, const struct conn *c, int res)
{
    int tries = c->tried.n;

    if (res != -ECONNREFUSED && res != -ETIMEDOUT && res != -ENETUNREACH && res != -EHOSTUNREACH &&
        res != -ECONNRESET && res != -ECANCELED && res != -EADDRNOTAVAIL && res != -ENOENT)
        return 0;
    return tries <= (int)conn_backend(w, c)->retries && tries < conn_rt(w, c)->pools[c->be_index].n;
}

/* Closes the socket to the server that failed and connects to another. */
static void conn_retry(struct worker *w, struct conn *c)
{
    stat_inc(&st_backend(w, c)->retries);
    c->flags &= (uint8_t)~CONN_RETRYING;
    w->io->close(w, c->fd[SIDE_BACKEND], 0);
    c->fd[SIDE_BACKEND] = -1;
    conn_drop_server(w, c);
    conn_connect(w, c);
}

/* The connect failed with res: another server, or the end. */
static void connect_failed(struct worker *w, struct conn *c, int res)
{
    char addr[ADDR_STRLEN], baddr[ADDR_STRLEN];

    account_connect_failed(w, c, res);
    log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: backend %s: connect: %s%s", w->id, c->id,
           addr_format(&c->peer.sa, addr, sizeof(addr)),
           conn_server_name(w, c, baddr, sizeof(baddr)), strerror(-res),
           conn_may_retry(w, c, res) ? "; trying another server" : "");
    if (conn_may_retry(w, c, res)) {
        conn_retry(w, c);
        return;
    }
    conn_end(c, END_CONNECT_FAILED);
    conn_close(w, c, 0);
}

/* The outbound header goes first: in the headroom before the client's
 * first bytes when they are there already (one send), else on its own. */
static void header_queue(struct worker *w, struct conn *c)
{
    struct dir *dir = &c->dir[SIDE_CLIENT];

    if (!c->hdr_len)
        return;
    if (dir->len && c->hdr_len <= dir->off) {
        dir->off -= c->hdr_len;
        dir->len += c->hdr_len;
        memcpy(buf_data(w, dir->buf) + dir->off, conn_hdr(c), c->hdr_len);
        c->hdr_sent = c->hdr_len;
    } else {
        dir->flags |= DIR_HDR;
    }
}

void relay_on_connect(struct worker *w, struct conn *c, int res)
{
    if (c->state == CONN_CLOSING) {
        conn_op_done(w, c);
        return;
    }
    c->inflight--;
    if (res < 0 && (c->flags & CONN_RETRYING)) {
        conn_retry(w, c); /* the connect we gave up on (timed out) */
        return;
    }
    c->flags &= (uint8_t)~CONN_RETRYING;
    checker_connect_result(conn_rt(w, c), c->be_index, c->server, res >= 0);
    if (res < 0) {
        connect_failed(w, c, res);
        return;
    }
    c->state = CONN_OPEN;
    c->open_ms = w->now_ms;
    c->t_open = conn_elapsed(c);
    stat_inc(&st_server(w, c)->conns);
    stats_hist_add(&st_backend(w, c)->connect, c->t_open - c->t_connect);
    timer_set(w, c, TIMER_IDLE);
    header_queue(w, c);
    dir_next(w, c, SIDE_CLIENT);
    dir_next(w, c, SIDE_BACKEND);
}

/* ---- accept and the handshake ---- */

/* Does what the handshake says comes next. */
static void handshake_act(struct worker *w, struct conn *c, enum hs_next next)
{
    switch (next) {
    case HS_POLL:
        op_poll_in(w, c, SIDE_CLIENT, 0);
        break;
    case HS_POLL_DRAINED:
        op_poll_in(w, c, SIDE_CLIENT, 1);
        break;
    case HS_CONNECT:
        conn_connect(w, c);
        break;
    case HS_CLOSE:
        conn_close(w, c, 0);
        break;
    case HS_RESET:
        conn_close(w, c, 1);
        break;
    }
}

/* Full: a reset at once tells the client (or the balancer in front) to go
 * elsewhere, where a paused accept would leave it waiting in the backlog,
 * or its SYN unanswered once the backlog is full too. */
static void accept_refuse(struct worker *w, int fd, int bind, enum conn_end end)
{
    const struct runtime *rt = w->gens[w->cur_gen].rt;

    account_refused(w, fd, bind, end);
    w->io->close(w, fd, 1);
    if (end == END_LISTENER_OFF)
        log_rl(LOG_LEVEL_INFO, "listener %s is disabled (disable listener): connection reset",
               rt->cfg.listeners[w->listen_li[bind]].name);
    else
        log_rl(LOG_LEVEL_WARN, "worker %d: --max-connections %u reached: connection reset", w->id,
               w->pool.n_conns);
}

/* Whether an operator disabled the listener of listen_fd[bind]. */
static int listener_off(const struct worker *w, int bind)
{
    const struct runtime *rt = w->gens[w->cur_gen].rt;

    return atomic_load_explicit(&listener_state_of(rt->st_listener[w->listen_li[bind]])->off,
                                memory_order_relaxed);
}

void relay_on_accept(struct worker *w, int fd, int bind)
{
    socklen_t len = sizeof(union sockaddr_inet);
    struct conn *c;

    if (listener_off(w, bind)) {
        accept_refuse(w, fd, bind, END_LISTENER_OFF);
        return;
    }
    c = conn_alloc(w);
    if (!c) {
        accept_refuse(w, fd, bind, END_REFUSED_LIMIT);
        return;
    }
    accepting_reset(w);
    c->fd[SIDE_CLIENT] = fd; /* TCP_NODELAY comes from the listener */
    c->li = w->listen_li[bind];
    c->dst = w->listen_local[bind]; /* AF_UNSPEC: a wildcard bind, asked when needed */
    stat_inc(&st_listener(w, c)->accepted);
    if (getpeername(fd, &c->peer.sa, &len) == -1) {
        conn_end(c, END_CLIENT_RESET);
        conn_close(w, c, 0);
        return;
    }
    handshake_act(w, c, handshake_begin(w, c));
}

void relay_on_accept_error(struct worker *w, int err)
{
    log_rl(LOG_LEVEL_ERROR, "worker %d: accept: %s; pausing accepts for %u ms", w->id,
           strerror(err), w->accept_backoff_ms);
    stat_inc(&w->st->w.accept_errors);
    accepting_back_off(w);
}

/* ---- moving bytes ---- */

/* The source of d sent FIN and everything before it went out: pass the FIN
 * on. The connection closes when both directions are done. */
static void dir_shut(struct worker *w, struct conn *c, int d)
{
    conn_end(c, d == SIDE_CLIENT ? END_CLIENT_CLOSED : END_BACKEND_CLOSED);
    c->dir[d].flags |= DIR_DONE;
    if (c->dir[!d].flags & DIR_DONE) {
        /* Both ways are done: closing fd[!d], whose every byte was read,
         * sends the FIN a shutdown would. */
        conn_close(w, c, 0);
        return;
    }
    (void)shutdown(c->fd[!d], SHUT_WR);
    timer_set(w, c, TIMER_FIN);
}

/* Whether d should move to splice; ends a full window in auto mode. */
static int splice_wanted(const struct worker *w, const struct conn *c, struct dir *dir)
{
    if (conn_cfg(w, c)->splice == SPLICE_ALWAYS)
        return 1;
    if (conn_cfg(w, c)->splice != SPLICE_AUTO || dir->win_bytes < SPLICE_WINDOW)
        return 0;
    if (dir->win_reads <= SPLICE_WINDOW / SPLICE_MIN_READ)
        return 1;
    dir->win_bytes = 0;
    dir->win_reads = 0;
    return 0;
}

/* Empties d's pipe into fd[!d]. Returns 0 once it is empty, or 1 when the
 * destination is full (waiting for it to drain) or failed (c reset). A
 * short splice out means the socket is full. */
static int splice_out(struct worker *w, struct conn *c, int d)
{
    struct dir *dir = &c->dir[d];
    ssize_t n =
        splice(w->pool.pipes[dir->pipe].r, NULL, c->fd[!d], NULL, dir->in_pipe, SPLICE_FLAGS);

    if (n == -1 && errno != EAGAIN) {
        conn_abort(w, c, !d, errno);
        return 1;
    }
    if (n == -1 || (uint32_t)n < dir->in_pipe) {
        dir->in_pipe -= n == -1 ? 0 : (uint32_t)n;
        op_poll_out(w, c, d);
        return 1;
    }
    dir->in_pipe = 0;
    return 0;
}

/* Fills d's pipe from fd[d]. Returns the bytes moved, 0 at the source's
 * end (DIR_EOF set), or -1 when there was nothing (waiting for more) or it
 * failed (c reset). */
static ssize_t splice_in(struct worker *w, struct conn *c, int d)
{
    struct dir *dir = &c->dir[d];
    ssize_t n = splice(c->fd[d], NULL, w->pool.pipes[dir->pipe].w, NULL,
                       w->pool.pipes[dir->pipe].cap, SPLICE_FLAGS);

    if (n == 0) {
        dir->flags |= DIR_EOF;
    } else if (n == -1) {
        if (errno != EAGAIN) {
            conn_abort(w, c, d, errno);
            return -1;
        }
        pipe_release(w, dir);
        op_poll_in(w, c, d, 1);
    } else {
        dir->in_pipe = (uint32_t)n;
        dir->moved += (uint64_t)n;
        conn_touch(w, c);
    }
    return n;
}

/* Every pipe is busy: d copies instead, for now. */
static void splice_give_up(struct worker *w, struct conn *c, int d)
{
    struct dir *dir = &c->dir[d];

    dir->flags &= (uint8_t) ~(DIR_SPLICE | DIR_BULK);
    dir->win_bytes = 0;
    dir->win_reads = 0;
    op_recv(w, c, d);
}

/* Moves bytes fd[d] -> pipe -> fd[!d] until the source is drained, the
 * destination is full, or the budget is spent; then waits for readiness.
 * A short splice in most likely emptied the socket: wait for readability
 * (at once if not) rather than spend a call to hear EAGAIN. */
static void splice_pump(struct worker *w, struct conn *c, int d)
{
    struct dir *dir = &c->dir[d];
    size_t budget = SPLICE_BUDGET;
    int drained = 0;
    ssize_t n;

    for (;;) {
        if (dir->in_pipe && splice_out(w, c, d))
            return;
        if (dir->flags & DIR_EOF) {
            pipe_release(w, dir);
            dir_shut(w, c, d);
            return;
        }
        /* Drained is not certain (a pipe can fill its slots before its
         * bytes); with the budget spent it is most likely readable still,
         * and the poll fires at once. */
        if (drained || budget == 0) {
            pipe_release(w, dir);
            op_poll_in(w, c, d, 0);
            return;
        }
        if (dir->pipe < 0 && pipe_get(w, dir) < 0) {
            splice_give_up(w, c, d);
            return;
        }
        n = splice_in(w, c, d);
        if (n < 0)
            return;
        if (n > 0) {
            budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
            drained = (uint32_t)n < w->pool.pipes[dir->pipe].cap;
        }
    }
}

/* Decides what direction d does next, given nothing of it is in flight
 * that would decide it instead. Safe to call at any point. */
static void dir_next(struct worker *w, struct conn *c, int d)
{
    struct dir *dir = &c->dir[d];

    if (c->state == CONN_CONNECTING) {
        /* Only the client may be read before the header has gone out. */
        if (d == SIDE_CLIENT && !(dir->flags & (DIR_RECV | DIR_EOF)) && !dir->len &&
            (conn_cfg(w, c)->splice != SPLICE_ALWAYS || (c->flags & CONN_UNTRUSTED)))
            op_recv(w, c, d);
        return;
    }
    if (c->state != CONN_OPEN || (dir->flags & (DIR_SEND | DIR_DONE)))
        return;
    if ((dir->flags & DIR_HDR) || dir->len) {
        op_send(w, c, d);
        return;
    }
    if (dir->flags & DIR_RECV)
        return;
    if (dir->flags & DIR_EOF) {
        dir_shut(w, c, d);
        return;
    }
    if (!(dir->flags & (DIR_SPLICE | DIR_BULK)) && !(c->flags & CONN_UNTRUSTED) &&
        splice_wanted(w, c, dir))
        dir->flags |= DIR_BULK;
    if ((dir->flags & (DIR_SPLICE | DIR_BULK)) == DIR_BULK && w->io->recv_idle(w, c, d)) {
        log_debug("c%u.%u %s: bulk transfer: splicing", w->id, c->id, side_name[d]);
        dir->flags |= DIR_SPLICE;
    }
    if (dir->flags & DIR_SPLICE)
        splice_pump(w, c, d);
    else
        op_recv(w, c, d);
}

void relay_send_span(struct worker *w, struct conn *c, int d, const void **p, size_t *len)
{
    struct dir *dir = &c->dir[d];

    if (dir->flags & DIR_HDR) {
        *p = conn_hdr(c) + c->hdr_sent;
        *len = (size_t)(c->hdr_len - c->hdr_sent);
    } else {
        *p = buf_data(w, dir->buf) + dir->off;
        *len = dir->len;
    }
}

void relay_on_recv(struct worker *w, struct conn *c, int d, int res, uint16_t bid)
{
    struct dir *dir = &c->dir[d];

    dir->flags &= (uint8_t)~DIR_RECV;
    if (c->state == CONN_CLOSING) {
        if (bid != BUF_NONE)
            buf_give_back(w, bid);
        conn_op_done(w, c);
        return;
    }
    c->inflight--;
    if (dir->moved == 0 && res >= 0) /* errors: conn_abort() looks */
        account_first_event(w, c, d, res, res > 0 ? buf_data(w, bid) + BUF_HEADROOM : NULL);
    if (res == -ENOBUFS) {
        starve(w, c, d);
        return;
    }
    if (res < 0) {
        conn_abort(w, c, d, -res);
        return;
    }
    if (res == 0) {
        dir->flags |= DIR_EOF;
        dir_next(w, c, d);
        return;
    }
    dir->buf = bid;
    dir->off = BUF_HEADROOM;
    dir->len = (uint32_t)res;
    if ((c->flags & CONN_UNTRUSTED) && d == SIDE_CLIENT &&
        handshake_untrusted(w, c, buf_data(w, bid) + dir->off, dir->len)) {
        conn_close(w, c, 1);
        return;
    }
    dir->moved += (uint64_t)res;
    dir->win_bytes += (uint32_t)res;
    dir->win_reads++;
    conn_touch(w, c);
    dir_next(w, c, d);
}

void relay_on_send(struct worker *w, struct conn *c, int d, int res)
{
    struct dir *dir = &c->dir[d];

    dir->flags &= (uint8_t)~DIR_SEND;
    if (c->state == CONN_CLOSING) {
        conn_op_done(w, c);
        return;
    }
    c->inflight--;
    if (res < 0) {
        conn_abort(w, c, !d, -res);
        return;
    }
    if (dir->flags & DIR_HDR) {
        c->hdr_sent = (uint16_t)(c->hdr_sent + res);
        if (c->hdr_sent == c->hdr_len)
            dir->flags &= (uint8_t)~DIR_HDR;
    } else {
        dir->off += (uint32_t)res;
        dir->len -= (uint32_t)res;
        if (dir->len == 0)
            buf_release(w, dir);
    }
    dir_next(w, c, d);
}

void relay_on_poll(struct worker *w, struct conn *c, int d, int res)
{
    struct dir *dir = &c->dir[d];

    dir->flags &= (uint8_t) ~(DIR_RECV | DIR_SEND);
    if (c->state == CONN_CLOSING) {
        conn_op_done(w, c);
        return;
    }
    c->inflight--;
    if (res < 0)
        conn_abort(w, c, d, -res);
    else if (c->state == CONN_HEADER || c->state == CONN_PEEK)
        handshake_act(w, c, handshake_read(w, c));
    else
        splice_pump(w, c, d);
}

/* ---- timers ---- */

/* c's connect took too long. Returns 1 if it goes on with another server,
 * 0 if it ends (close it). */
static int connect_timed_out(struct worker *w, struct conn *c)
{
    char addr[ADDR_STRLEN], baddr[ADDR_STRLEN];

    if (c->flags & CONN_WAIT_FD) {
        conn_end(c, END_LOCAL_ERROR);
        log_rl(LOG_LEVEL_WARN,
               "c%u.%u client %s: no descriptor for its backend connection "
               "within the connect timeout: closed",
               w->id, c->id, addr_format(&c->peer.sa, addr, sizeof(addr)));
        return 0;
    }
    stat_inc(&st_server(w, c)->fails[FAIL_TIMEOUT]);
    log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: backend %s: connect timed out after %u ms%s", w->id,
           c->id, addr_format(&c->peer.sa, addr, sizeof(addr)),
           conn_server_name(w, c, baddr, sizeof(baddr)), conn_timeout_ms(w, c, TIMER_CONNECT),
           conn_may_retry(w, c, -ETIMEDOUT) ? "; trying another server" : "");
    checker_connect_result(conn_rt(w, c), c->be_index, c->server, 0);
    if (!conn_may_retry(w, c, -ETIMEDOUT)) {
        conn_end(c, END_CONNECT_TIMEOUT);
        return 0;
    }
    timer_set(w, c, TIMER_NONE);
    c->flags |= CONN_RETRYING;
    if (w->io->connect_abandon(w, c)) { /* gone at once */
        c->inflight--;
        conn_retry(w, c);
    }
    return 1;
}

static void relay_on_timeout(struct worker *w, struct conn *c)
{
    switch (c->timer_kind) {
    case TIMER_CONNECT:
        if (connect_timed_out(w, c))
            return;
        break;
    case TIMER_HEADER:
    case TIMER_PEEK:
        handshake_timed_out(w, c);
        break;
    case TIMER_IDLE:
        conn_end(c, END_IDLE_TIMEOUT);
        log_debug("c%u.%u idle for %u ms", w->id, c->id, conn_timeout_ms(w, c, TIMER_IDLE));
        break;
    default:
        conn_end(c, END_IDLE_TIMEOUT);
        log_debug("c%u.%u half-closed and idle for %u ms", w->id, c->id,
                  conn_timeout_ms(w, c, TIMER_FIN));
        break;
    }
    conn_close(w, c, 0);
}

void relay_timers_run(struct worker *w)
{
    struct conn *c;

    for (int g = 0; g < WORKER_GENS; g++)
        for (int k = 0; w->gens[g].rt && k < TIMER_KINDS; k++)
            for (int o = 0; o < TIMER_OWNERS; o++)
                while ((c = timer_expired(w, g, k, o)))
                    relay_on_timeout(w, c);
}

uint32_t relay_close_servers(struct worker *w, const uint8_t *slots)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < w->pool.n_used; i++) {
        struct conn *c = &w->pool.conns[i];
        int slot;
        if (c->state == CONN_FREE || c->state == CONN_CLOSING || c->server < 0)
            continue;
        slot = conn_rt(w, c)->st_server[c->be_index][c->server];
        if (!(slots[slot / 8] & (1u << (slot % 8))))
            continue;
        conn_end(c, END_SERVER_SHUTDOWN);
        conn_close(w, c, 1);
        n++;
    }
    return n;
}

void relay_close_all(struct worker *w)
{
    for (uint32_t i = 0; i < w->pool.n_used; i++) {
        struct conn *c = &w->pool.conns[i];
        if (c->state == CONN_FREE || c->state == CONN_CLOSING)
            continue;
        conn_end(c, END_STOPPED);
        conn_close(w, c, 1);
    }
}
