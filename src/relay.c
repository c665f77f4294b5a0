/* Connection state machine. Every direction is in one of two modes:
 * copy (recv into a pooled buffer, send it, recv again: never more than one
 * buffer per direction, which is the backpressure) or splice (readiness,
 * then splice(2) through a pooled pipe held only while bytes sit in it). */
#include "relay.h"

#include "checker.h"
#include "cidr.h"
#include "clienthello.h"
#include "io.h"
#include "log.h"
#include "proxy_parse.h"
#include "sniff.h"
#include "srclimit.h"
#include "syserr.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Auto mode looks at a direction's reads in windows of this many bytes: if
 * they came in reads of SPLICE_MIN_READ or more on average, it is a bulk
 * stream and moves to splice; request/response traffic never does. */
#define SPLICE_WINDOW (256 * 1024U)
#define SPLICE_MIN_READ (8 * 1024U)
/* Bytes one splice pump moves before yielding to other connections. */
#define SPLICE_BUDGET (1024 * 1024U)
#define PIPE_CAP (256 * 1024U)
static uint64_t instance_id;

void relay_set_instance(uint64_t id)
{
    instance_id = id;
}

/* A backend that ends the connection this soon after the PROXY header,
 * before sending a byte, most likely refused the header. */
#define NO_PROXY_WINDOW_MS 2000

static const char *const side_name[] = {"client", "backend"};

/* ---- counters and timings ---- */

static uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Microseconds since c was accepted, at least 1 (0 means "not yet"). */
static uint32_t conn_elapsed(const struct conn *c)
{
    uint64_t d = mono_us() - c->start_us;

    return d == 0 ? 1 : d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static struct stats_listener *st_listener(struct worker *w, const struct conn *c)
{
    return &w->st->l[conn_rt(w, c)->st_listener[c->li]];
}

static struct stats_backend *st_backend(struct worker *w, const struct conn *c)
{
    return &w->st->b[conn_rt(w, c)->st_backend[c->be_index]];
}

static struct stats_server *st_server(struct worker *w, const struct conn *c)
{
    return &w->st->s[conn_rt(w, c)->st_server[c->be_index][c->server]];
}

/* Records why c ends; the first cause given is the one that counts. */
static void conn_end(struct conn *c, enum conn_end why)
{
    if (c->end == END_NONE)
        c->end = (uint8_t)why;
}

static enum connect_fail connect_cause(int res)
{
    switch (res) {
    case -ECONNREFUSED:
        return FAIL_REFUSED;
    case -ETIMEDOUT:
        return FAIL_TIMEOUT;
    case -ENETUNREACH:
    case -EHOSTUNREACH:
    case -EADDRNOTAVAIL:
    case -ENOENT:
        return FAIL_UNREACHABLE;
    case -ECONNRESET:
        return FAIL_RESET;
    default:
        return FAIL_OTHER;
    }
}

/* The connection's access log extras, made on first use (NULL if out of
 * memory: the line then lacks them). */
static struct conn_extra *conn_extra(struct conn *c)
{
    if (!c->extra)
        c->extra = calloc(1, sizeof(*c->extra));
    return c->extra;
}

/* Whether the access log wants a line for a connection that ended so. */
static int access_wanted(const struct worker *w, const struct conn *c)
{
    enum access_log_mode mode = conn_cfg(w, c)->access_log.mode;

    if (!w->alog || mode == ACCESS_LOG_OFF)
        return 0;
    return mode == ACCESS_LOG_ALL || (c->end != END_CLIENT_CLOSED && c->end != END_BACKEND_CLOSED);
}

/* Hands c's line to the access log writer; a full ring drops it. */
static void access_record(struct worker *w, struct conn *c)
{
    struct access_record *r;

    if (!access_wanted(w, c))
        return;
    if (!(r = access_ring_slot(w->alog))) {
        stat_inc(&w->st->w.log_dropped);
        return;
    }
    r->start_us = c->start_us;
    r->end_us = mono_us();
    r->conn_id = c->id;
    r->worker = (uint16_t)w->id;
    r->end = c->end;
    r->flags = 0;
    r->listener = conn_rt(w, c)->st_listener[c->li];
    if (c->flags & CONN_ON_BACKEND) {
        r->flags |= ACCESS_HAS_BACKEND;
        r->backend = conn_rt(w, c)->st_backend[c->be_index];
    }
    if (c->server >= 0) {
        r->flags |= ACCESS_HAS_SERVER;
        r->server = conn_rt(w, c)->st_server[c->be_index][c->server];
    }
    r->t_open = c->t_open;
    r->t_first = c->t_first;
    r->bytes[0] = c->dir[0].moved;
    r->bytes[1] = c->dir[1].moved;
    r->client = c->peer;
    r->sni[0] = r->alpn[0] = '\0';
    if (c->extra) {
        if (c->extra->direct.sa.sa_family) {
            r->flags |= ACCESS_HAS_DIRECT;
            r->direct = c->extra->direct;
        }
        memcpy(r->sni, c->extra->sni, sizeof(r->sni));
        memcpy(r->alpn, c->extra->alpn, sizeof(r->alpn));
    }
    access_ring_commit(w->alog);
}

/* A connection refused before it had a slot: a line of its own. */
static void access_refused(struct worker *w, int fd, int bind)
{
    struct conn c = {.end = END_REFUSED_LIMIT, .server = -1, .rgen = w->cur_gen};
    socklen_t len = sizeof(c.peer);

    c.li = w->listen_li[bind];
    if (!access_wanted(w, &c))
        return;
    c.start_us = mono_us();
    (void)getpeername(fd, &c.peer.sa, &len);
    access_record(w, &c);
}

/* What a finished connection adds to its listener's, backend's and
 * server's counters. */
static void conn_count_end(struct worker *w, struct conn *c)
{
    struct stats_listener *l = st_listener(w, c);

    if (c->end == END_NONE)
        c->end = END_LOCAL_ERROR;
    access_record(w, c);
    stat_inc(&l->closed);
    stat_inc(&l->ends[c->end]);
    if (c->flags & CONN_ON_BACKEND) {
        struct stats_backend *b = st_backend(w, c);
        stat_inc(&b->closed);
        stat_add(&b->bytes[0], c->dir[0].moved);
        stat_add(&b->bytes[1], c->dir[1].moved);
        stats_hist_add(&b->duration, conn_elapsed(c));
    }
    if (c->t_open && c->server >= 0) {
        struct stats_server *sv = st_server(w, c);
        stat_inc(&sv->closed);
        stat_add(&sv->bytes[0], c->dir[0].moved);
        stat_add(&sv->bytes[1], c->dir[1].moved);
    }
}

static void dir_next(struct worker *w, struct conn *c, int d);

/* ---- connection slots and timers ---- */

/* Takes a slot, or returns NULL when all workers together are at
 * --max-connections. */
static struct conn *conn_alloc(struct worker *w)
{
    struct conn *c;
    uint32_t gen;

    int room = w->n_free > 0 || w->n_used < w->n_conns;

    if (!room ||
        atomic_fetch_add_explicit(w->active_total, 1, memory_order_relaxed) >= w->n_conns) {
        if (room)
            atomic_fetch_sub_explicit(w->active_total, 1, memory_order_relaxed);
        return NULL;
    }
    /* A freed slot (still in cache) before a fresh one (a page to touch). */
    c = &w->conns[w->n_free ? w->free_conns[--w->n_free] : w->n_used++];
    gen = c->gen;
    memset(c, 0, sizeof(*c));
    c->gen = gen;
    c->state = CONN_CONNECTING;
    c->id = ++w->next_id;
    c->fd[0] = c->fd[1] = -1;
    for (int d = 0; d < 2; d++) {
        c->dir[d].buf = BUF_NONE;
        c->dir[d].pipe = -1;
    }
    c->timer_kind = TIMER_NONE;
    c->server = -1;
    c->rgen = w->cur_gen;
    w->gens[c->rgen].conns++;
    list_init(&c->timer);
    c->start_us = mono_us();
    stat_inc(&w->st->w.active);
    return c;
}

static void timer_set(struct worker *w, struct conn *c, enum timer_kind kind)
{
    list_del(&c->timer);
    c->timer_kind = (uint8_t)kind;
    c->active_ms = w->now_ms;
    if (kind != TIMER_NONE && conn_gen(w, c)->timeout_ms[kind][timer_owner(c, kind)])
        list_add_tail(&conn_gen(w, c)->timers[kind][timer_owner(c, kind)], &c->timer);
}

/* Activity: restart the inactivity timer, at most once a second so the
 * data path rarely touches the list. */
static void conn_touch(struct worker *w, struct conn *c)
{
    int k = c->timer_kind;

    if ((k == TIMER_IDLE || k == TIMER_FIN) &&
        c->active_ms + conn_gen(w, c)->touch_ms[k][timer_owner(c, k)] <= w->now_ms)
        timer_set(w, c, (enum timer_kind)k);
}

/* ---- pooled buffers and pipes ---- */

static void buf_release(struct worker *w, struct dir *dir)
{
    if (dir->buf == BUF_NONE)
        return;
    relay_buf_put(w, dir->buf);
    dir->buf = BUF_NONE;
    dir->len = 0;
}

void relay_buf_put(struct worker *w, uint16_t bid)
{
    w->io->buf_put(w, bid);
    if (w->n_starved) {
        uint32_t v = w->starved[--w->n_starved];
        struct conn *c = &w->conns[v >> 1];

        c->dir[v & 1].flags &= (uint8_t)~DIR_STARVED;
        dir_next(w, c, (int)(v & 1));
    }
}

/* Takes an empty pipe from the pool, making it on first use. Returns 0 or
 * -errno (-ENOSPC when all pipes are held). */
/* Queues a direction that found the buffer pool empty. Each starved
 * direction has exactly one entry (unstarve() removes it on close), so the
 * queue never holds more than 2 * n_conns. */
static void starve(struct worker *w, struct conn *c, int d)
{
    c->dir[d].flags |= DIR_STARVED;
    w->starved[w->n_starved++] = conn_index(w, c) << 1 | (uint32_t)d;
}

/* Rare (a starved connection closing), so a linear scan is fine. */
static void unstarve(struct worker *w, struct conn *c, int d)
{
    uint32_t v = conn_index(w, c) << 1 | (uint32_t)d;

    if (!(c->dir[d].flags & DIR_STARVED))
        return;
    c->dir[d].flags &= (uint8_t)~DIR_STARVED;
    for (uint32_t i = 0; i < w->n_starved; i++) {
        if (w->starved[i] == v) {
            w->starved[i] = w->starved[--w->n_starved];
            return;
        }
    }
}

static int pipe_get(struct worker *w, struct dir *dir)
{
    struct pipe_pair *p;
    int fds[2];

    if (w->n_pipes_free == 0) {
        stat_inc(&w->st->w.pipes_exhausted);
        return -ENOSPC;
    }
    p = &w->pipes[w->free_pipes[w->n_pipes_free - 1]];
    if (p->r < 0) {
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
            return -errno;
        /* A larger pipe means fewer splice calls per byte; the kernel may
         * refuse (pipe-user-pages-soft) and the default still works. */
        (void)fcntl(fds[0], F_SETPIPE_SZ, PIPE_CAP);
        p->r = fds[0];
        p->w = fds[1];
        p->cap = (uint32_t)fcntl(fds[0], F_GETPIPE_SZ);
    }
    dir->pipe = (int16_t)w->free_pipes[--w->n_pipes_free];
    stat_inc(&w->st->w.pipes_in_use);
    return 0;
}

/* Returns the pipe to the pool; one with bytes nobody will read is closed
 * rather than drained, and made anew when next taken. */
static void pipe_release(struct worker *w, struct dir *dir)
{
    struct pipe_pair *p;

    if (dir->pipe < 0)
        return;
    p = &w->pipes[dir->pipe];
    if (dir->in_pipe) {
        close(p->r);
        close(p->w);
        p->r = p->w = -1;
    }
    w->free_pipes[w->n_pipes_free++] = (uint16_t)dir->pipe;
    stat_dec(&w->st->w.pipes_in_use);
    dir->pipe = -1;
    dir->in_pipe = 0;
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

static void conn_drop_server(struct worker *w, struct conn *c);

static void conn_free(struct worker *w, struct conn *c)
{
    conn_count_end(w, c);
    if (c->flags & CONN_SRC_COUNTED)
        srclimit_put(c->src_key);
    conn_drop_server(w, c);
    for (int d = 0; d < 2; d++) {
        buf_release(w, &c->dir[d]);
        pipe_release(w, &c->dir[d]);
    }
    conn_discard(c);
    w->gens[c->rgen].conns--;
    c->state = CONN_FREE;
    c->gen++;
    w->free_conns[w->n_free++] = conn_index(w, c);
    stat_dec(&w->st->w.active);
    atomic_fetch_sub_explicit(w->active_total, 1, memory_order_relaxed);
}

void conn_discard(struct conn *c)
{
    for (int s = 0; s < 2; s++) {
        if (c->fd[s] >= 0)
            close(c->fd[s]);
        c->fd[s] = -1;
    }
    free(c->hdr_in);
    c->hdr_in = NULL;
    free(c->hdr_ext);
    c->hdr_ext = NULL;
    free(c->extra);
    c->extra = NULL;
}

/* An operation of a closing connection completed. */
static void conn_op_done(struct worker *w, struct conn *c)
{
    if (--c->inflight == 0 && c->state == CONN_CLOSING)
        conn_free(w, c);
}

/* Makes close(fd) send RST instead of FIN. */
static void reset_on_close(int fd)
{
    static const struct linger rst = {.l_onoff = 1, .l_linger = 0};

    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
}

void conn_close(struct worker *w, struct conn *c, int abort)
{
    if (c->state == CONN_CLOSING || c->state == CONN_FREE)
        return;
    if (abort)
        for (int s = 0; s < 2; s++)
            if (c->fd[s] >= 0)
                reset_on_close(c->fd[s]);
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

static void backend_gone_early(struct worker *w, struct conn *c, int res);

/* An error on side: reset both. A backend failing before its first byte,
 * whether a recv, a send or a splice saw it first, may be refusing the
 * PROXY header. */
static void conn_abort(struct worker *w, struct conn *c, int side, int err)
{
    if (side == SIDE_BACKEND && c->dir[SIDE_BACKEND].moved == 0)
        backend_gone_early(w, c, -err);
    log_debug("c%u.%u %s: %s: resetting the other side", w->id, c->id, side_name[side],
              strerror(err));
    conn_end(c, side == SIDE_CLIENT ? END_CLIENT_RESET : END_BACKEND_RESET);
    conn_close(w, c, 1);
}

/* ---- accept and connect ---- */

/* Out of descriptors or memory: accepting rests a while, longer each time
 * in a row (an accept that works starts the back-off over). */
static void accept_back_off(struct worker *w)
{
    worker_accept_pause(w, ACCEPT_PAUSE_ERROR);
    w->accept_resume_ms = w->now_ms + w->accept_backoff_ms;
    if (w->accept_backoff_ms < ACCEPT_BACKOFF_MAX_MS)
        w->accept_backoff_ms *= 2;
}

static void set_nodelay(int fd)
{
    static const int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static const struct config_backend *conn_backend(const struct worker *w, const struct conn *c)
{
    return &conn_cfg(w, c)->backends[c->be_index];
}

/* Appends one TLV to c's outbound header; one that does not fit is left
 * out (the header stays valid). */
static void conn_add_tlv(struct worker *w, struct conn *c, uint8_t type, const void *v,
                         size_t len)
{
    size_t n = c->hdr_len;

    if (c->hdr_ext &&
        proxy_v2_add_tlv(c->hdr_ext, conn_rt(w, c)->hdr_cap[c->be_index], &n, type, v, len) == 0)
        c->hdr_len = (uint16_t)n;
}

/* Copies the TLV types the backend lists from a trusted inbound header's
 * TLVs (kept in hdr_in since the header was read). */
static void conn_pass_tlvs(struct worker *w, struct conn *c)
{
    const struct config_backend *b = conn_backend(w, c);
    struct proxy_header in = {.tlv = c->hdr_in, .tlv_len = c->hdr_in_len};
    const uint8_t *v;
    size_t pos = 0;
    uint16_t len;
    uint8_t type;

    while (c->hdr_in && proxy_tlv_next(&in, &pos, &type, &v, &len))
        for (int i = 0; i < b->n_tlv_pass; i++)
            if (b->tlv_pass[i] == type)
                conn_add_tlv(w, c, type, v, len);
}

/* Writes c's outbound header for its backend: the client's address (from
 * a trusted inbound header, or the connection), the address it reached,
 * and the TLVs the backend wants that are known before a server is picked.
 * ch: the ClientHello if one was peeked. Returns 0 or -errno. */
static int conn_build_header(struct worker *w, struct conn *c, const struct client_hello *ch)
{
    const struct config_backend *b = conn_backend(w, c);
    union sockaddr_inet local;
    const struct sockaddr *dst = &c->dst.sa;
    socklen_t len = sizeof(local);
    int n;

    if (b->proxy_protocol == PROXY_OFF)
        return 0;
    if (!(c->flags & CONN_HAS_DST)) {
        if (getsockname(c->fd[SIDE_CLIENT], &local.sa, &len) == -1)
            return -errno;
        dst = &local.sa;
    }
    if ((b->tlvs || b->n_tlv_pass) && !(c->hdr_ext = malloc(conn_rt(w, c)->hdr_cap[c->be_index])))
        return -ENOMEM;
    n = proxy_encode(b->proxy_protocol, conn_hdr(c),
                     c->hdr_ext ? conn_rt(w, c)->hdr_cap[c->be_index] : sizeof(c->hdr),
                     &c->peer.sa, dst);
    if (n < 0)
        return n;
    c->hdr_len = (uint16_t)n;
    conn_pass_tlvs(w, c);
    if (ch && (b->tlvs & TLV_AUTHORITY) && ch->sni)
        conn_add_tlv(w, c, PROXY_TLV_AUTHORITY, ch->sni, ch->sni_len);
    if (ch && (b->tlvs & TLV_ALPN) && ch->alpn) /* the first protocol offered */
        conn_add_tlv(w, c, PROXY_TLV_ALPN, ch->alpn + 1, ch->alpn[0]);
    return 0;
}

/* The TLVs known once the backend is chosen: UNIQUE_ID, then CRC32C over
 * the finished header. */
static void conn_finish_header(struct worker *w, struct conn *c)
{
    const struct config_backend *b = conn_backend(w, c);
    char id[64];
    size_t n;

    if (!c->hdr_ext)
        return;
    if (b->tlvs & TLV_UNIQUE_ID) {
        snprintf(id, sizeof(id), "%016llx-%d.%u", (unsigned long long)instance_id, w->id, c->id);
        conn_add_tlv(w, c, PROXY_TLV_UNIQUE_ID, id, strlen(id));
        log_debug("c%u.%u unique_id %s", w->id, c->id, id);
    }
    n = c->hdr_len;
    if ((b->tlvs & TLV_CRC32C) &&
        proxy_v2_add_crc32c(c->hdr_ext, conn_rt(w, c)->hdr_cap[c->be_index], &n) == 0)
        c->hdr_len = (uint16_t)n;
}

/* Names c's server in logs, or its backend before a server is picked. */
static const char *conn_server_name(const struct worker *w, const struct conn *c, char *buf,
                                    size_t cap)
{
    if (c->server < 0) {
        snprintf(buf, cap, "%s", conn_backend(w, c)->name);
        return buf;
    }
    return addr_format(runtime_server_addr(conn_rt(w, c), c->be_index, c->server), buf, cap);
}

/* Takes a server of c's backend that is up, has room, and was not tried
 * yet. Returns 0, or -1 (logged, counted) when there is none. */
static int conn_pick_server(struct worker *w, struct conn *c)
{
    struct pool *p = &conn_rt(w, c)->pools[c->be_index];
    int s = pool_pick(p, &conn_gen(w, c)->rr[c->be_index], &c->peer.sa, &c->tried);

    if (s < 0) {
        stat_inc(&st_backend(w, c)->no_server);
        conn_end(c, END_NO_SERVER);
        log_rl(LOG_LEVEL_WARN, "c%u.%u backend %s: no server to take the connection (%d "
               "servers: down, full, or tried already)", w->id, c->id, conn_backend(w, c)->name,
               p->n);
        return -1;
    }
    c->server = (int16_t)s;
    pool_tried_add(&c->tried, s);
    atomic_fetch_add_explicit(&p->m[s].active, 1, memory_order_relaxed);
    return 0;
}

/* Gives c's server back (its open count). */
static void conn_drop_server(struct worker *w, struct conn *c)
{
    if (c->server < 0)
        return;
    atomic_fetch_sub_explicit(&conn_rt(w, c)->pools[c->be_index].m[c->server].active, 1,
                              memory_order_relaxed);
    c->server = -1;
}

/* No descriptor for c's backend socket: c waits for one, up to its
 * connect timeout, rather than being dropped, and accepting pauses so no
 * more clients are taken meanwhile. Returns 0 if the wait list is full. */
static int conn_wait_fd(struct worker *w, struct conn *c, int err)
{
    if (!(w->accept_paused & ACCEPT_PAUSE_ERROR))
        accept_back_off(w);
    if (w->n_fd_wait == FD_WAIT_MAX)
        return 0;
    log_rl(LOG_LEVEL_WARN, "c%u.%u: backend socket: %s: waiting for a descriptor", w->id, c->id,
           strerror(err));
    c->tried.n--; /* its server, the last one added, was not tried: no connect was made */
    conn_drop_server(w, c);
    c->state = CONN_CONNECTING;
    if (!(c->flags & CONN_WAIT_FD)) /* the wait is bounded from its start */
        timer_set(w, c, TIMER_CONNECT);
    c->flags |= CONN_WAIT_FD;
    w->fd_wait[w->n_fd_wait++] = (struct fd_waiter){conn_index(w, c), c->gen};
    return 1;
}

/* Opens the connection to a server of c's backend; the header is built. */
static void conn_connect(struct worker *w, struct conn *c)
{
    const struct sockaddr *be;
    int bfd, err;

    if (conn_pick_server(w, c) < 0)
        return conn_close(w, c, 0);
    be = runtime_server_addr(conn_rt(w, c), c->be_index, c->server);
    bfd = socket(be->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (bfd == -1) {
        err = errno;
        if (err_out_of_resources(err) && conn_wait_fd(w, c, err))
            return;
        conn_end(c, END_LOCAL_ERROR);
        log_rl(LOG_LEVEL_WARN, "c%u.%u: backend socket: %s", w->id, c->id, strerror(err));
        return conn_close(w, c, 0);
    }
    c->fd[SIDE_BACKEND] = bfd;
    c->flags &= (uint8_t)~CONN_WAIT_FD;
    set_nodelay(bfd);
    c->state = CONN_CONNECTING;
    c->t_connect = conn_elapsed(c);
    timer_set(w, c, TIMER_CONNECT);
    c->inflight++;
    w->io->connect(w, c, be);
    /* Read early so the first client bytes can ride with the header. */
    dir_next(w, c, SIDE_CLIENT);
}

void relay_fd_wait_retry(struct worker *w)
{
    struct fd_waiter waiting[FD_WAIT_MAX];
    uint32_t n = w->n_fd_wait, i;

    memcpy(waiting, w->fd_wait, n * sizeof(*waiting));
    w->n_fd_wait = 0;
    for (i = 0; i < n; i++) {
        struct conn *c = &w->conns[waiting[i].index];
        if (c->gen != waiting[i].gen || c->state != CONN_CONNECTING ||
            !(c->flags & CONN_WAIT_FD))
            continue; /* closed meanwhile */
        conn_connect(w, c);
        if (w->n_fd_wait)
            break; /* still none: the rest keep their places */
    }
    for (i++; i < n; i++)
        w->fd_wait[w->n_fd_wait++] = waiting[i];
}

/* ---- a trusted client's inbound PROXY header ----
 * It is peeked, never read past: once parsed, exactly its bytes are taken
 * from the socket and whatever follows is relayed as usual. Only a header
 * that arrives in pieces is copied out, its bytes so far all header. */

static void conn_route(struct worker *w, struct conn *c);
static int source_over_limit(struct worker *w, struct conn *c);

static void header_start(struct worker *w, struct conn *c)
{
    c->state = CONN_HEADER;
    timer_set(w, c, TIMER_HEADER);
    op_poll_in(w, c, SIDE_CLIENT, 0);
}

/* A trusted client sent something other than a header: say what, and the
 * likely fix, once per kind of mistake. */
static void header_refuse(struct worker *w, struct conn *c, const uint8_t *p, size_t len,
                          const char *why)
{
    static const char fix[] =
        "the hop in front is not sending PROXY protocol (an nginx http-block proxy_pass "
        "cannot; use an nginx stream block with proxy_protocol on, or HAProxy send-proxy-v2), "
        "or set --proxy-protocol-in off";
    char addr[ADDR_STRLEN];

    stat_inc(&st_listener(w, c)->header_bad);
    conn_end(c, END_BAD_HEADER);
    addr_format(&c->peer.sa, addr, sizeof(addr));
    switch (sniff_first_bytes(p, len)) {
    case SNIFF_TLS:
        log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: expected a PROXY header, got a TLS "
               "ClientHello: %s", w->id, c->id, addr, fix);
        break;
    case SNIFF_HTTP:
        log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: expected a PROXY header, got an HTTP "
               "request: %s", w->id, c->id, addr, fix);
        break;
    default:
        log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: bad PROXY header: %s", w->id, c->id, addr,
               why);
        break;
    }
    conn_close(w, c, 0);
}

/* The header took p[0..drop) of what the socket still holds: take those
 * bytes and go on with the addresses it carries. */
static void header_done(struct worker *w, struct conn *c, const struct proxy_header *h,
                        uint8_t *scratch, size_t drop)
{
    if (drop && recv(c->fd[SIDE_CLIENT], scratch, drop, 0) != (ssize_t)drop) {
        conn_end(c, END_CLIENT_RESET);
        return conn_close(w, c, 1);
    }
    free(c->hdr_in);
    c->hdr_in = NULL;
    c->hdr_in_len = 0;
    stat_inc(&st_listener(w, c)->header_in);
    if (h->has_addr) {
        if (w->alog && conn_extra(c))
            c->extra->direct = c->peer;
        c->peer = h->src;
        c->dst = h->dst;
        c->flags |= CONN_HAS_DST;
        if (source_over_limit(w, c))
            return;
    } /* else LOCAL or UNKNOWN: the connection's own endpoints */
    /* Keep the TLVs a backend may copy until one is chosen. */
    if (conn_rt(w, c)->any_tlv_pass && h->tlv_len && (c->hdr_in = malloc(h->tlv_len))) {
        memcpy(c->hdr_in, h->tlv, h->tlv_len);
        c->hdr_in_len = (uint16_t)h->tlv_len;
    }
    conn_route(w, c);
}

static void header_read(struct worker *w, struct conn *c)
{
    uint8_t buf[CONFIG_HEADER_MAX_LIMIT];
    const struct config_listener *l = &conn_cfg(w, c)->listeners[c->li];
    enum proxy_in mode = l->proxy_protocol_in;
    size_t have = c->hdr_in_len,
           cap = mode == PROXY_IN_V1 || l->header_max_size < PROXY_V1_MAX ? PROXY_V1_MAX
                                                                           : l->header_max_size;
    struct proxy_header h;
    ssize_t n = recv(c->fd[SIDE_CLIENT], buf + have, cap - have, MSG_PEEK);
    int ret;

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return op_poll_in(w, c, SIDE_CLIENT, 1);
    if (n <= 0) {
        log_debug("c%u.%u client closed before its PROXY header was complete (%zu bytes)",
                  w->id, c->id, have);
        conn_end(c, n == 0 ? END_CLIENT_CLOSED : END_CLIENT_RESET);
        return conn_close(w, c, 0);
    }
    if (have)
        memcpy(buf, c->hdr_in, have);
    ret = proxy_parse(buf, have + (size_t)n, mode, l->header_max_size, &h);
    if (ret > 0)
        return header_done(w, c, &h, buf + have, (size_t)ret - have);
    if (ret != -EAGAIN)
        return header_refuse(w, c, buf, have + (size_t)n, h.why);
    /* All of it is header so far: keep it and wait for the rest. */
    if (!c->hdr_in && !(c->hdr_in = malloc(cap))) {
        conn_end(c, END_LOCAL_ERROR);
        return conn_close(w, c, 1);
    }
    if (recv(c->fd[SIDE_CLIENT], c->hdr_in + have, (size_t)n, 0) != n) {
        conn_end(c, END_CLIENT_RESET);
        return conn_close(w, c, 1);
    }
    c->hdr_in_len = (uint16_t)(have + (size_t)n);
    op_poll_in(w, c, SIDE_CLIENT, 1);
}

/* An untrusted client's first bytes look like a PROXY header: a forged
 * address, or a proxy missing from --trusted-source. */
static void untrusted_refuse(struct worker *w, struct conn *c)
{
    char addr[ADDR_STRLEN];

    stat_inc(&st_listener(w, c)->header_untrusted);
    conn_end(c, END_UNTRUSTED_HEADER);
    log_rl(LOG_LEVEL_WARN, "c%u.%u client %s sent a PROXY header but is not a "
           "--trusted-source: refused (a forged address, or a proxy missing from the list)",
           w->id, c->id, addr_format(&c->peer.sa, addr, sizeof(addr)));
    conn_close(w, c, 1);
}

/* ---- routing by the ClientHello's server name ----
 * The ClientHello is peeked, never read: it goes to the chosen backend as
 * the client sent it. While it is incomplete, SO_RCVLOWAT holds readiness
 * back until as much of the stream as it needs has arrived. */

static void peek_start(struct worker *w, struct conn *c)
{
    c->state = CONN_PEEK;
    timer_set(w, c, TIMER_PEEK);
    op_poll_in(w, c, SIDE_CLIENT, 0);
}

static void set_lowat(struct conn *c, int bytes)
{
    (void)setsockopt(c->fd[SIDE_CLIENT], SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes));
}

/* The backend is chosen: build the header for it, then connect. */
static void conn_prepare(struct worker *w, struct conn *c, int be, const struct client_hello *ch)
{
    c->be_index = (uint8_t)be;
    c->flags |= CONN_ON_BACKEND;
    stat_inc(&st_backend(w, c)->conns);
    if (conn_build_header(w, c, ch) < 0) {
        conn_end(c, END_LOCAL_ERROR);
        return conn_close(w, c, 0);
    }
    free(c->hdr_in); /* inbound TLVs, copied or not needed */
    c->hdr_in = NULL;
    c->hdr_in_len = 0;
    conn_finish_header(w, c);
    conn_connect(w, c);
}

/* Keeps the server name and first ALPN protocol for the access log (a
 * name longer than it keeps is cut). */
static void conn_keep_hello(struct conn *c, const struct client_hello *ch)
{
    size_t n = ch->sni_len < ACCESS_SNI_MAX - 1 ? ch->sni_len : ACCESS_SNI_MAX - 1;

    if (!conn_extra(c))
        return;
    if (ch->sni)
        memcpy(c->extra->sni, ch->sni, n);
    n = ch->alpn && ch->alpn[0] < ACCESS_ALPN_MAX ? ch->alpn[0] : 0;
    if (n)
        memcpy(c->extra->alpn, ch->alpn + 1, n);
}

/* Routes by the ClientHello's server name (ch NULL: none), then prepares. */
static void peek_done(struct worker *w, struct conn *c, const struct client_hello *ch)
{
    const struct config_listener *l = &conn_cfg(w, c)->listeners[c->li];
    int routed = ch ? route_table_pick(&conn_rt(w, c)->routes[c->li], ch->sni, ch->sni_len) : -1;

    if (c->flags & CONN_LOWAT) {
        set_lowat(c, 1);
        c->flags &= (uint8_t)~CONN_LOWAT;
    }
    if (routed >= 0)
        stat_inc(&st_listener(w, c)->routed);
    if (ch && w->alog)
        conn_keep_hello(c, ch);
    conn_prepare(w, c, routed >= 0 ? routed : l->default_index, ch);
}

static void peek_read(struct worker *w, struct conn *c)
{
    uint8_t buf[CONFIG_PEEK_MAX], scratch[CONFIG_PEEK_MAX];
    struct client_hello ch;
    ssize_t n = recv(c->fd[SIDE_CLIENT], buf, sizeof(buf), MSG_PEEK);
    int ret;

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return op_poll_in(w, c, SIDE_CLIENT, 1);
    if (n <= 0) {
        log_debug("c%u.%u client closed before its ClientHello was complete", w->id, c->id);
        conn_end(c, n == 0 ? END_CLIENT_CLOSED : END_CLIENT_RESET);
        return conn_close(w, c, 0);
    }
    if (c->flags & CONN_UNTRUSTED) {
        c->flags &= (uint8_t)~CONN_UNTRUSTED;
        if (sniff_is_proxy(sniff_first_bytes(buf, (size_t)n)))
            return untrusted_refuse(w, c);
    }
    ret = clienthello_parse(buf, (size_t)n, scratch, sizeof(scratch), &ch);
    if (ret == -EAGAIN && ch.need <= sizeof(buf)) {
        c->flags |= CONN_LOWAT;
        set_lowat(c, (int)ch.need);
        return op_poll_in(w, c, SIDE_CLIENT, 1);
    }
    if (ret < 0) {
        log_debug("c%u.%u %s: default backend", w->id, c->id,
                  ret == -EPROTO ? "not a TLS ClientHello" : "ClientHello too large");
        return peek_done(w, c, NULL);
    }
    peek_done(w, c, &ch);
}

/* Picks the backend: by server name if the listener has routes (or its
 * default backend wants TLVs from the ClientHello), else its default. */
static void conn_route(struct worker *w, struct conn *c)
{
    const struct config_listener *l = &conn_cfg(w, c)->listeners[c->li];

    if (l->n_routes || (conn_cfg(w, c)->backends[l->default_index].tlvs & (TLV_AUTHORITY | TLV_ALPN)))
        return peek_start(w, c);
    conn_prepare(w, c, l->default_index, NULL);
}

/* Counts c against its client address's share of the listener's
 * max_connections_per_source; refuses it with a reset when that is full.
 * Returns 1 if c was refused (and closed). */
static int source_over_limit(struct worker *w, struct conn *c)
{
    uint32_t limit = conn_cfg(w, c)->listeners[c->li].max_per_source;
    char addr[ADDR_STRLEN];

    if (!limit)
        return 0;
    c->src_key = srclimit_key(&c->peer.sa);
    if (srclimit_take(c->src_key, limit) == 0) {
        c->flags |= CONN_SRC_COUNTED;
        return 0;
    }
    stat_inc(&st_listener(w, c)->refused_source);
    conn_end(c, END_SOURCE_LIMIT);
    log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: already %u connections open from this address "
           "(max_connections_per_source): refused", w->id, c->id,
           addr_format(&c->peer.sa, addr, sizeof(addr)), limit);
    conn_close(w, c, 1);
    return 1;
}

static int peer_trusted(const struct config_listener *l, const struct sockaddr *sa)
{
    for (int i = 0; i < l->n_trusted; i++)
        if (cidr_match(&l->trusted[i], sa))
            return 1;
    return 0;
}

void relay_on_accept(struct worker *w, int fd, int bind)
{
    struct conn *c = conn_alloc(w);
    const struct config_listener *l;
    socklen_t len;

    if (!c) {
        /* Full: a reset at once tells the client (or the balancer in front)
         * to go elsewhere, where a paused accept would leave it waiting in
         * the backlog, or its SYN unanswered once the backlog is full too. */
        struct stats_listener *sl =
            &w->st->l[w->gens[w->cur_gen].rt->st_listener[w->listen_li[bind]]];
        access_refused(w, fd, bind);
        reset_on_close(fd);
        close(fd);
        stat_inc(&sl->refused);
        stat_inc(&sl->ends[END_REFUSED_LIMIT]);
        log_rl(LOG_LEVEL_WARN, "worker %d: --max-connections %u reached: connection reset",
               w->id, w->n_conns);
        return;
    }
    w->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
    c->fd[SIDE_CLIENT] = fd; /* TCP_NODELAY comes from the listener */
    c->li = w->listen_li[bind];
    stat_inc(&st_listener(w, c)->accepted);
    len = sizeof(c->peer);
    if (getpeername(fd, &c->peer.sa, &len) == -1) {
        conn_end(c, END_CLIENT_RESET);
        return conn_close(w, c, 0);
    }
    l = &conn_cfg(w, c)->listeners[c->li];
    if (l->proxy_protocol_in != PROXY_IN_OFF && peer_trusted(l, &c->peer.sa)) {
        /* A trusted proxy speaks for many clients: each is counted by the
         * address its header gives. */
        w->io->attach(w, c, SIDE_CLIENT);
        return header_start(w, c);
    }
    if (source_over_limit(w, c))
        return;
    w->io->attach(w, c, SIDE_CLIENT);
    if (l->proxy_protocol_in != PROXY_IN_OFF)
        c->flags |= CONN_UNTRUSTED;
    conn_route(w, c);
}

/* Whether another server may be tried: the connect failed in a way
 * another server may not, nothing was written to this one (nothing is
 * before the connect completes), and the backend allows more tries. */
static int conn_may_retry(const struct worker *w, const struct conn *c, int res)
{
    int tries = c->tried.n;

    if (res != -ECONNREFUSED && res != -ETIMEDOUT && res != -ENETUNREACH &&
        res != -EHOSTUNREACH && res != -ECONNRESET && res != -ECANCELED &&
        res != -EADDRNOTAVAIL && res != -ENOENT)
        return 0;
    return tries <= (int)conn_backend(w, c)->retries && tries < conn_rt(w, c)->pools[c->be_index].n;
}

/* Closes the socket to the server that failed and connects to another. */
static void conn_retry(struct worker *w, struct conn *c)
{
    stat_inc(&st_backend(w, c)->retries);
    c->flags &= (uint8_t)~CONN_RETRYING;
    close(c->fd[SIDE_BACKEND]);
    c->fd[SIDE_BACKEND] = -1;
    conn_drop_server(w, c);
    conn_connect(w, c);
}

void relay_on_connect(struct worker *w, struct conn *c, int res)
{
    char addr[ADDR_STRLEN], baddr[ADDR_STRLEN];

    if (c->state == CONN_CLOSING)
        return conn_op_done(w, c);
    c->inflight--;
    if (res < 0 && (c->flags & CONN_RETRYING))
        return conn_retry(w, c); /* the connect we gave up on (timed out) */
    c->flags &= (uint8_t)~CONN_RETRYING;
    checker_connect_result(conn_rt(w, c), c->be_index, c->server, res >= 0);
    if (res < 0) {
        stat_inc(&st_server(w, c)->fails[connect_cause(res)]);
        log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: backend %s: connect: %s%s", w->id, c->id,
               addr_format(&c->peer.sa, addr, sizeof(addr)),
               conn_server_name(w, c, baddr, sizeof(baddr)), strerror(-res),
               conn_may_retry(w, c, res) ? "; trying another server" : "");
        if (conn_may_retry(w, c, res))
            return conn_retry(w, c);
        conn_end(c, END_CONNECT_FAILED);
        conn_close(w, c, 0);
        return;
    }
    c->state = CONN_OPEN;
    c->open_ms = w->now_ms;
    c->t_open = conn_elapsed(c);
    stat_inc(&st_server(w, c)->conns);
    stats_hist_add(&st_backend(w, c)->connect, c->t_open - c->t_connect);
    timer_set(w, c, TIMER_IDLE);
    if (c->hdr_len) {
        struct dir *dir = &c->dir[SIDE_CLIENT];
        if (dir->len && c->hdr_len <= dir->off) {
            /* One send: header in the headroom, then the first bytes. */
            dir->off -= c->hdr_len;
            dir->len += c->hdr_len;
            memcpy(buf_data(w, dir->buf) + dir->off, conn_hdr(c), c->hdr_len);
            c->hdr_sent = c->hdr_len;
        } else {
            dir->flags |= DIR_HDR;
        }
    }
    dir_next(w, c, SIDE_CLIENT);
    dir_next(w, c, SIDE_BACKEND);
}

/* ---- moving bytes ---- */

/* The source of d sent FIN and everything before it went out: pass the FIN
 * on. The connection closes when both directions are done. */
static void dir_shut(struct worker *w, struct conn *c, int d)
{
    conn_end(c, d == SIDE_CLIENT ? END_CLIENT_CLOSED : END_BACKEND_CLOSED);
    c->dir[d].flags |= DIR_DONE;
    (void)shutdown(c->fd[!d], SHUT_WR);
    if (c->dir[!d].flags & DIR_DONE)
        conn_close(w, c, 0);
    else
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

/* Moves bytes fd[d] -> pipe -> fd[!d] until the source is drained, the
 * destination is full, or the budget is spent; then waits for readiness.
 * A short splice out means the socket is full: writability comes back when
 * it drains. A short splice in most likely emptied the socket: wait for
 * readability (at once if not) rather than spend a call to hear EAGAIN. */
static void splice_pump(struct worker *w, struct conn *c, int d)
{
    struct dir *dir = &c->dir[d];
    size_t budget = SPLICE_BUDGET;
    int drained = 0;
    ssize_t n;

    for (;;) {
        if (dir->in_pipe) {
            n = splice(w->pipes[dir->pipe].r, NULL, c->fd[!d], NULL, dir->in_pipe,
                       SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n == -1 && errno != EAGAIN)
                return conn_abort(w, c, !d, errno);
            if (n == -1 || (uint32_t)n < dir->in_pipe) {
                dir->in_pipe -= n == -1 ? 0 : (uint32_t)n;
                return op_poll_out(w, c, d);
            }
            dir->in_pipe = 0;
        }
        if (dir->flags & DIR_EOF) {
            pipe_release(w, dir);
            return dir_shut(w, c, d);
        }
        if (drained) {
            /* Not certain: a pipe can fill its slots before its bytes. */
            pipe_release(w, dir);
            return op_poll_in(w, c, d, 0);
        }
        if (budget == 0) {
            /* Readable still, most likely: the poll fires at once. */
            pipe_release(w, dir);
            return op_poll_in(w, c, d, 0);
        }
        if (dir->pipe < 0 && pipe_get(w, dir) < 0) {
            /* Every pipe is busy: copy instead, for now. */
            dir->flags &= (uint8_t)~(DIR_SPLICE | DIR_BULK);
            dir->win_bytes = 0;
            dir->win_reads = 0;
            return op_recv(w, c, d);
        }
        n = splice(c->fd[d], NULL, w->pipes[dir->pipe].w, NULL, w->pipes[dir->pipe].cap,
                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n == 0) {
            dir->flags |= DIR_EOF;
        } else if (n == -1) {
            if (errno != EAGAIN)
                return conn_abort(w, c, d, errno);
            pipe_release(w, dir);
            return op_poll_in(w, c, d, 1);
        } else {
            dir->in_pipe = (uint32_t)n;
            dir->moved += (uint64_t)n;
            budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
            drained = (uint32_t)n < w->pipes[dir->pipe].cap;
            conn_touch(w, c);
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
    if ((dir->flags & DIR_HDR) || dir->len)
        return op_send(w, c, d);
    if (dir->flags & DIR_RECV)
        return;
    if (dir->flags & DIR_EOF)
        return dir_shut(w, c, d);
    if (!(dir->flags & (DIR_SPLICE | DIR_BULK)) && !(c->flags & CONN_UNTRUSTED) &&
        splice_wanted(w, c, dir))
        dir->flags |= DIR_BULK;
    if ((dir->flags & (DIR_SPLICE | DIR_BULK)) == DIR_BULK && w->io->recv_idle(w, c, d)) {
        log_debug("c%u.%u %s: bulk transfer: splicing", w->id, c->id, side_name[d]);
        dir->flags |= DIR_SPLICE;
    }
    if (dir->flags & DIR_SPLICE)
        return splice_pump(w, c, d);
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

/* The backend took the PROXY header and then said nothing but goodbye
 * (what), or answered a ClientHello in something other than TLS: the
 * classic listener without proxy_protocol. Says so once per connection. */
static void backend_no_proxy(struct worker *w, struct conn *c, const char *what)
{
    char baddr[ADDR_STRLEN];

    stat_inc(&st_server(w, c)->no_proxy);
    log_rl(LOG_LEVEL_WARN, "c%u.%u backend %s %s: it probably does not expect PROXY protocol on "
           "that port (nginx/Kong: add proxy_protocol to its listen line), or run the relay "
           "with --proxy-protocol off", w->id, c->id,
           conn_server_name(w, c, baddr, sizeof(baddr)), what);
}

/* Whether the backend's first move can still say it refused the header:
 * the header went out, the client has not closed (a backend closing after
 * the client did is just following it), and the backend has not closed
 * already (its FIN was that first move, diagnosed then; a send failing on
 * it afterwards is its echo). */
static int backend_on_trial(const struct conn *c)
{
    return c->hdr_len && c->state == CONN_OPEN && !(c->dir[SIDE_CLIENT].flags & DIR_EOF) &&
           !(c->dir[SIDE_BACKEND].flags & DIR_EOF);
}

/* The backend closed (res 0) or failed (-errno) before its first byte. */
static void backend_gone_early(struct worker *w, struct conn *c, int res)
{
    char what[80];

    if (!backend_on_trial(c) || w->now_ms - c->open_ms > NO_PROXY_WINDOW_MS)
        return;
    snprintf(what, sizeof(what), "%s %llu ms after the PROXY header, before sending a byte",
             res == 0 ? "closed" : "reset", (unsigned long long)(w->now_ms - c->open_ms));
    backend_no_proxy(w, c, what);
}

/* The backend's first bytes, not TLS, answer the header rather than speak
 * a protocol where the server talks first: the client sent a ClientHello,
 * or has sent nothing yet and the backend answers with an HTTP status
 * line (nginx reads the header as a broken plain-HTTP request). */
static void backend_first_bytes(struct worker *w, struct conn *c, const uint8_t *p, size_t len)
{
    char what[80];
    size_t n;

    if (!backend_on_trial(c) || sniff_tls_record(p, len))
        return;
    if (!(c->flags & CONN_CLIENT_TLS) &&
        (c->dir[SIDE_CLIENT].moved != 0 || len < 5 || memcmp(p, "HTTP/", 5) != 0))
        return;
    /* Quote the start of the answer, printable bytes only. */
    n = (size_t)snprintf(what, sizeof(what), "answered the %s with \"",
                         c->flags & CONN_CLIENT_TLS ? "TLS ClientHello" : "PROXY header");
    for (size_t i = 0; i < len && n < sizeof(what) - 2 && p[i] != '\r' && p[i] != '\n'; i++)
        what[n++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
    snprintf(what + n, sizeof(what) - n, "\"");
    backend_no_proxy(w, c, what);
}

/* Looks at the first bytes each way (res > 0) or the end before them
 * (res 0), for the diagnosis above. */
static void first_bytes_seen(struct worker *w, struct conn *c, int d, int res, const uint8_t *p)
{
    if (d == SIDE_CLIENT) {
        if (res > 0 && sniff_first_bytes(p, (size_t)res) == SNIFF_TLS)
            c->flags |= CONN_CLIENT_TLS;
        return;
    }
    if (res == 0)
        return backend_gone_early(w, c, 0);
    if (c->state == CONN_OPEN && !c->t_first) {
        c->t_first = conn_elapsed(c);
        stats_hist_add(&st_backend(w, c)->first_byte, c->t_first - c->t_open);
    }
    backend_first_bytes(w, c, p, (size_t)res);
}

void relay_on_recv(struct worker *w, struct conn *c, int d, int res, uint16_t bid)
{
    struct dir *dir = &c->dir[d];

    dir->flags &= (uint8_t)~DIR_RECV;
    if (c->state == CONN_CLOSING) {
        if (bid != BUF_NONE)
            relay_buf_put(w, bid);
        return conn_op_done(w, c);
    }
    c->inflight--;
    if (dir->moved == 0 && res >= 0) /* errors: conn_abort() looks */
        first_bytes_seen(w, c, d, res, res > 0 ? buf_data(w, bid) + BUF_HEADROOM : NULL);
    if (res == -ENOBUFS) {
        starve(w, c, d);
        return;
    }
    if (res < 0)
        return conn_abort(w, c, d, -res);
    if (res == 0) {
        dir->flags |= DIR_EOF;
        return dir_next(w, c, d);
    }
    dir->buf = bid;
    dir->off = BUF_HEADROOM;
    dir->len = (uint32_t)res;
    if ((c->flags & CONN_UNTRUSTED) && d == SIDE_CLIENT) {
        c->flags &= (uint8_t)~CONN_UNTRUSTED;
        if (sniff_is_proxy(sniff_first_bytes(buf_data(w, bid) + dir->off, dir->len)))
            return untrusted_refuse(w, c);
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
    if (c->state == CONN_CLOSING)
        return conn_op_done(w, c);
    c->inflight--;
    if (res < 0)
        return conn_abort(w, c, !d, -res);
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

    dir->flags &= (uint8_t)~(DIR_RECV | DIR_SEND);
    if (c->state == CONN_CLOSING)
        return conn_op_done(w, c);
    c->inflight--;
    if (res < 0)
        return conn_abort(w, c, d, -res);
    if (c->state == CONN_HEADER)
        return header_read(w, c);
    if (c->state == CONN_PEEK)
        return peek_read(w, c);
    splice_pump(w, c, d);
}

void relay_on_accept_error(struct worker *w, int err)
{
    log_rl(LOG_LEVEL_ERROR, "worker %d: accept: %s; pausing accepts for %u ms", w->id,
           strerror(err), w->accept_backoff_ms);
    stat_inc(&w->st->w.accept_errors);
    accept_back_off(w);
}

void relay_on_timeout(struct worker *w, struct conn *c)
{
    char addr[ADDR_STRLEN], baddr[ADDR_STRLEN];

    switch (c->timer_kind) {
    case TIMER_CONNECT:
        if (c->flags & CONN_WAIT_FD) {
            conn_end(c, END_LOCAL_ERROR);
            log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: no descriptor for its backend connection "
                   "within the connect timeout: closed", w->id, c->id,
                   addr_format(&c->peer.sa, addr, sizeof(addr)));
            break;
        }
        stat_inc(&st_server(w, c)->fails[FAIL_TIMEOUT]);
        log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: backend %s: connect timed out after %u ms%s",
               w->id, c->id, addr_format(&c->peer.sa, addr, sizeof(addr)),
               conn_server_name(w, c, baddr, sizeof(baddr)),
               conn_gen(w, c)->timeout_ms[TIMER_CONNECT][timer_owner(c, TIMER_CONNECT)],
               conn_may_retry(w, c, -ETIMEDOUT) ? "; trying another server" : "");
        checker_connect_result(conn_rt(w, c), c->be_index, c->server, 0);
        if (conn_may_retry(w, c, -ETIMEDOUT)) {
            timer_set(w, c, TIMER_NONE);
            c->flags |= CONN_RETRYING;
            if (w->io->connect_abandon(w, c)) { /* gone at once */
                c->inflight--;
                conn_retry(w, c);
            }
            return;
        }
        conn_end(c, END_CONNECT_TIMEOUT);
        break;
    case TIMER_HEADER:
        stat_inc(&st_listener(w, c)->header_timeouts);
        conn_end(c, END_HEADER_TIMEOUT);
        log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: no PROXY header within %u ms "
               "(--header-timeout): closed", w->id, c->id,
               addr_format(&c->peer.sa, addr, sizeof(addr)), conn_gen(w, c)->timeout_ms[TIMER_HEADER][timer_owner(c, TIMER_HEADER)]);
        break;
    case TIMER_PEEK:
        stat_inc(&st_listener(w, c)->peek_timeouts);
        conn_end(c, END_PEEK_TIMEOUT);
        log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: no whole TLS ClientHello within %u ms "
               "(--peek-timeout): closed", w->id, c->id,
               addr_format(&c->peer.sa, addr, sizeof(addr)), conn_gen(w, c)->timeout_ms[TIMER_PEEK][timer_owner(c, TIMER_PEEK)]);
        break;
    case TIMER_IDLE:
        conn_end(c, END_IDLE_TIMEOUT);
        log_debug("c%u.%u idle for %u ms", w->id, c->id, conn_gen(w, c)->timeout_ms[TIMER_IDLE][timer_owner(c, TIMER_IDLE)]);
        break;
    default:
        conn_end(c, END_IDLE_TIMEOUT);
        log_debug("c%u.%u half-closed and idle for %u ms", w->id, c->id,
                  conn_gen(w, c)->timeout_ms[TIMER_FIN][timer_owner(c, TIMER_FIN)]);
        break;
    }
    conn_close(w, c, 0);
}

static const char *const state_name[] = {
    [CONN_FREE] = "free",          [CONN_HEADER] = "header", [CONN_PEEK] = "peek",
    [CONN_CONNECTING] = "connect", [CONN_OPEN] = "open",     [CONN_CLOSING] = "closing",
};

void relay_dump_conns(struct worker *w, FILE *out, uint32_t max)
{
    uint64_t now = mono_us();
    uint32_t n = 0;

    for (uint32_t i = 0; i < w->n_used; i++) {
        struct conn *c = &w->conns[i];
        char addr[ADDR_STRLEN], srv[ADDR_STRLEN];
        if (c->state == CONN_FREE)
            continue;
        if (n++ == max) {
            fprintf(out, "worker %d: more connections not shown\n", w->id);
            return;
        }
        fprintf(out, "%d.%u %s client=%s listener=%s backend=%s server=%s age_ms=%llu "
                "from_client=%llu from_server=%llu\n", w->id, c->id, state_name[c->state],
                addr_format(&c->peer.sa, addr, sizeof(addr)), conn_cfg(w, c)->listeners[c->li].name,
                c->flags & CONN_ON_BACKEND ? conn_backend(w, c)->name : "-",
                c->server >= 0 ? conn_server_name(w, c, srv, sizeof(srv)) : "-",
                (unsigned long long)((now - c->start_us) / 1000),
                (unsigned long long)c->dir[0].moved, (unsigned long long)c->dir[1].moved);
    }
}

void relay_close_all(struct worker *w)
{
    for (uint32_t i = 0; i < w->n_used; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == CONN_FREE || c->state == CONN_CLOSING)
            continue;
        conn_end(c, END_STOPPED);
        conn_close(w, c, 1);
    }
}
