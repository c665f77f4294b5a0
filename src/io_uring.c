/* io_uring back end: multishot accept, connect, multishot recv into a
 * per-worker provided-buffer ring, send, and poll for the splice path.
 * user_data packs (connection index, generation, op, direction): nothing is
 * allocated per operation.
 *
 * The relay asks for one recv result at a time. A multishot recv stays armed
 * between asks; what it delivers while the relay is busy sending goes to a
 * small per-direction stash, and a full stash stops the recv (backpressure)
 * until the relay has taken it. */
#include "io.h"

#include "conn.h"
#include "log.h"
#include "syserr.h"
#include "uring_compat.h"
#include "worker.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RING_ENTRIES 2048
#define CQ_ENTRIES (RING_ENTRIES * 8)
#define BUF_GROUP 0

enum uring_op { OP_IGNORE, OP_ACCEPT, OP_SOCKET, OP_CONNECT, OP_RECV, OP_SEND, OP_POLL };

/* Per-direction recv state in conn->io.flags[d]; bits 8-15 count the
 * stashed buffers. */
#define R_ARMED 0x01    /* a recv on fd[d] is in the kernel */
#define R_MULTI 0x02    /* ... and it is multishot */
#define R_STOPPING 0x04 /* we asked the kernel to end that multishot */
#define R_ASKED 0x08    /* the relay waits for one result */
#define R_END 0x10      /* io.res[d] holds the result that ended the stream */
#define R_READY 0x20    /* on the ready list */
#define R_SINGLE 0x40   /* single-shot from now on: the relay wants to splice */
#define STASH_ONE 0x100
#define STASH_LIMIT 0xff /* what bits 8-15 can count */
#define STASH_MAX 2      /* stashed buffers that stop a multishot recv */
/* Most buffers one bundled recv completion may fill. */
#define BUNDLE_MAX 4
/* Most buffers one multishot recv may fill in all, where the kernel takes
 * such a total: it ends by itself there. A cancel (at STASH_MAX) stops it
 * sooner, but not while the worker waits in the kernel for a batch and the
 * kernel receives from a fast sender all along: only the total bounds what
 * a direction holds then. */
#define RECV_CAP_BUFS (2 * BUNDLE_MAX)
/* Once a completion is in, the kernel gathers more for this long (up to
 * BATCH_MAX) before the worker wakes (Linux 6.12); only with RECV_CAP_BUFS
 * in force. */
#define BATCH_WAIT_US 20
#define BATCH_MAX 64

struct uring_state {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    unsigned br_mask;
    int multishot;        /* multishot recv is available */
    int bundle;           /* ... and bundled: one completion, several buffers */
    int sockopt;          /* setsockopt as a socket command in the ring */
    uint32_t recv_cap;    /* bytes one multishot recv may bring in all (0: no total) */
    unsigned min_wait_us; /* batch completions this long once one is in (0: no) */
    int reg_fd;           /* the ring's fd is registered: enter_ring_fd */
    unsigned skip;        /* IOSQE_CQE_SKIP_SUCCESS where the kernel has it */
    uint16_t tail;        /* our copy of the buffer ring's tail */
    uint16_t *slot;       /* ring entry each buffer was last added at */
    uint16_t *next;       /* stash chains, by buffer id */
    uint32_t *len;        /* bytes in a stashed buffer */
    uint64_t *ready;      /* directions with an ask the stash can answer */
    size_t n_ready, cap_ready;
    uint8_t accept_armed[RUNTIME_MAX_BINDS];
};

static inline uint64_t ud_pack(uint32_t idx, uint32_t gen, enum uring_op op, int d)
{
    return (uint64_t)idx << 32 | (uint64_t)(gen & 0xffff) << 16 | (uint64_t)d << 8 | (uint64_t)op;
}

static inline uint64_t ud_conn(struct worker *w, struct conn *c, enum uring_op op, int d)
{
    return ud_pack(conn_index(w, c), c->gen, op, d);
}

static inline unsigned stash_count(uint16_t f)
{
    return f >> 8;
}

static inline struct uring_state *st_of(struct worker *w)
{
    return w->io_state;
}

/* An SQE, submitting queued ones first if the ring is full. */
static struct io_uring_sqe *sqe_get(struct worker *w)
{
    struct uring_state *st = st_of(w);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);

    while (!sqe) {
        io_uring_submit(&st->ring);
        sqe = io_uring_get_sqe(&st->ring);
    }
    return sqe;
}

/* Sets up a ring with the best flags this kernel takes; *flags gets them. */
static int ring_setup(struct io_uring *ring, unsigned *flags, unsigned *features)
{
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    struct io_uring_params p;
    int ret = -EINVAL;

    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = CQ_ENTRIES;
        ret = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
        if (ret == 0) {
            *flags = flag_sets[i];
            break;
        }
        if (ret != -EINVAL)
            return ret;
    }
    if (ret < 0)
        return ret;
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG) ||
        !(p.features & IORING_FEAT_FAST_POLL)) {
        io_uring_queue_exit(ring);
        return -EOPNOTSUPP;
    }
    *features = p.features;
    return 0;
}

/* Adds buffer bid at the ring's tail, remembering where it went: a bundled
 * completion names its first buffer only, and the rest follow it in the
 * ring. Published by the caller's io_uring_buf_ring_advance(). */
static void buf_ring_add(struct worker *w, struct uring_state *st, uint16_t bid)
{
    st->slot[bid] = st->tail;
    io_uring_buf_ring_add(st->br, buf_data(w, bid) + BUF_HEADROOM, BUF_SIZE, bid, (int)st->br_mask,
                          (int)(uint16_t)(st->tail - st->br->tail));
    st->tail++;
}

static int buf_ring_setup(struct worker *w, struct uring_state *st)
{
    struct io_uring_buf_reg reg;
    int ret;

    st->br_bytes = sizeof(struct io_uring_buf) * w->pool.n_bufs;
    st->br = mmap(NULL, st->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (st->br == MAP_FAILED) {
        st->br = NULL;
        return -ENOMEM;
    }
    io_uring_buf_ring_init(st->br);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)st->br;
    reg.ring_entries = w->pool.n_bufs;
    reg.bgid = BUF_GROUP;
    ret = io_uring_register_buf_ring(&st->ring, &reg, 0);
    if (ret < 0)
        return ret;
    st->br_mask = (unsigned)io_uring_buf_ring_mask(w->pool.n_bufs);
    st->tail = 0;
    for (uint32_t i = 0; i < w->pool.n_bufs; i++)
        buf_ring_add(w, st, (uint16_t)i);
    io_uring_buf_ring_advance(st->br, (int)w->pool.n_bufs);
    return 0;
}

/* setsockopt(fd, level, name, val, len) as a socket command. val is read
 * when the kernel runs it: it must outlive the submission. */
static void prep_setsockopt(struct io_uring_sqe *sqe, int fd, int level, int name, const void *val,
                            int len)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->off = SOCKET_URING_OP_SETSOCKOPT;
    sqe->addr = (uint64_t)(uint32_t)level | (uint64_t)(uint32_t)name << 32;
    sqe->splice_fd_in = len;
    sqe->addr3 = (uint64_t)(uintptr_t)val;
}

/* Whether this kernel takes the two setsockopts the relay makes as socket
 * commands: tried on a socket of our own, before the ring carries anything
 * else. */
static int sockopt_works(struct io_uring *ring)
{
    static const int one = 1;
    static const struct linger rst = {.l_onoff = 1, .l_linger = 0};
    struct io_uring_cqe *cqe;
    struct io_uring_sqe *sqe;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;

    if (fd == -1)
        return 0;
    for (int i = 0; i < 2 && (sqe = io_uring_get_sqe(ring)); i++) {
        if (i == 0)
            prep_setsockopt(sqe, fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        else
            prep_setsockopt(sqe, fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
        io_uring_sqe_set_data64(sqe, 0);
        ok = 0;
        if (io_uring_submit_and_wait(ring, 1) == 1 && io_uring_peek_cqe(ring, &cqe) == 0) {
            ok = cqe->res == 0;
            io_uring_cqe_seen(ring, cqe);
        }
        if (!ok)
            break;
    }
    close(fd);
    return ok;
}

static int recv_cap_works(struct worker *w, struct uring_state *st);

static void ur_fini(struct worker *w)
{
    struct uring_state *st = st_of(w);

    if (!st)
        return;
    io_uring_queue_exit(&st->ring);
    if (st->br)
        munmap(st->br, st->br_bytes);
    free(st->next);
    free(st->len);
    free(st->slot);
    free(st->ready);
    free(st);
    w->io_state = NULL;
}

static int ur_init(struct worker *w)
{
    struct uring_state *st = calloc(1, sizeof(*st));
    unsigned flags = 0, features = 0;
    int ret;

    if (!st)
        return -ENOMEM;
    ret = ring_setup(&st->ring, &flags, &features);
    if (ret < 0) {
        free(st);
        return ret;
    }
    w->io_state = st;
    /* Kernels with DEFER_TASKRUN (6.1) all have multishot recv (6.0). */
    st->multishot = (flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    st->bundle =
        st->multishot && (features & IORING_FEAT_RECVSEND_BUNDLE) && !getenv("RINGRELAY_NO_BUNDLE");
    st->sockopt = sockopt_works(&st->ring);
    st->skip = features & IORING_FEAT_CQE_SKIP ? IOSQE_CQE_SKIP_SUCCESS : 0;
    st->next = calloc(w->pool.n_bufs, sizeof(*st->next));
    st->len = calloc(w->pool.n_bufs, sizeof(*st->len));
    st->slot = calloc(w->pool.n_bufs, sizeof(*st->slot));
    st->cap_ready = 1024;
    st->ready = malloc(st->cap_ready * sizeof(*st->ready));
    if (!st->next || !st->len || !st->slot || !st->ready) {
        ur_fini(w);
        return -ENOMEM;
    }
    ret = buf_ring_setup(w, st);
    if (ret < 0) {
        ur_fini(w);
        return ret;
    }
    if (st->multishot && recv_cap_works(w, st))
        st->recv_cap = RECV_CAP_BUFS * BUF_SIZE;
    if (st->recv_cap && (features & IORING_FEAT_MIN_TIMEOUT) && !getenv("RINGRELAY_NO_BATCH_WAIT"))
        st->min_wait_us = BATCH_WAIT_US;
    /* Saves a file-table lookup on every io_uring_enter(). */
    st->reg_fd = io_uring_register_ring_fd(&st->ring) == 1;
    if (w->id == 0)
        log_debug("io_uring: multishot recv %s, bundles %s, recv total %s, batched waits %s, "
                  "setsockopt in the ring %s",
                  st->multishot ? "on" : "off", st->bundle ? "on" : "off",
                  st->recv_cap ? "on" : "off", st->min_wait_us ? "on" : "off",
                  st->sockopt ? "on" : "off");
    return 0;
}

int io_uring_usable(void)
{
    struct io_uring ring;
    unsigned flags, features;

    if (ring_setup(&ring, &flags, &features) < 0)
        return 0;
    io_uring_queue_exit(&ring);
    return 1;
}

static void ur_accept_start(struct worker *w)
{
    struct uring_state *st = st_of(w);

    for (int i = 0; i < w->n_listen; i++) {
        struct io_uring_sqe *sqe;

        if (st->accept_armed[i])
            continue;
        sqe = sqe_get(w);
        io_uring_prep_multishot_accept(sqe, w->listen_fd[i], NULL, NULL,
                                       SOCK_NONBLOCK | SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, ud_pack((uint32_t)i, 0, OP_ACCEPT, 0));
        st->accept_armed[i] = 1;
    }
}

static void ur_accept_stop(struct worker *w)
{
    struct uring_state *st = st_of(w);

    for (int i = 0; i < w->n_listen; i++) {
        struct io_uring_sqe *sqe;

        if (!st->accept_armed[i])
            continue;
        sqe = sqe_get(w);
        io_uring_prep_cancel64(sqe, ud_pack((uint32_t)i, 0, OP_ACCEPT, 0), 0);
        io_uring_sqe_set_data64(sqe, ud_pack(0, 0, OP_IGNORE, 0));
    }
}

static int ur_accept_idle(struct worker *w)
{
    struct uring_state *st = st_of(w);

    for (int i = 0; i < RUNTIME_MAX_BINDS; i++)
        if (st->accept_armed[i])
            return 0;
    return 1;
}

static void ur_attach(struct worker *w, struct conn *c, int side)
{
}

static void ur_socket(struct worker *w, struct conn *c, int family)
{
    struct io_uring_sqe *sqe = sqe_get(w);

    io_uring_prep_socket(sqe, family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_conn(w, c, OP_SOCKET, 0));
}

/* A setsockopt the next SQE waits for in a hard link (it goes on whatever
 * the setsockopt says): in the ring where the kernel takes it, else the
 * syscall now. val must outlive the submission. */
static void setsockopt_first(struct worker *w, int fd, int level, int name, const void *val,
                             int len)
{
    struct uring_state *st = st_of(w);
    struct io_uring_sqe *sqe;

    if (!st->sockopt) {
        (void)setsockopt(fd, level, name, val, (socklen_t)len);
        return;
    }
    if (io_uring_sq_space_left(&st->ring) < 2) /* the link must not span submissions */
        io_uring_submit(&st->ring);
    sqe = sqe_get(w);
    prep_setsockopt(sqe, fd, level, name, val, len);
    sqe->flags |= (uint8_t)(IOSQE_IO_HARDLINK | st->skip);
    io_uring_sqe_set_data64(sqe, ud_pack(0, 0, OP_IGNORE, 0));
}

/* TCP_NODELAY, then the connect. */
static void ur_connect(struct worker *w, struct conn *c, const struct sockaddr *sa)
{
    static const int one = 1;
    int fd = c->fd[SIDE_BACKEND];
    struct io_uring_sqe *sqe;

    if (sa->sa_family != AF_UNIX)
        setsockopt_first(w, fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sqe = sqe_get(w);
    io_uring_prep_connect(sqe, fd, sa, addr_len(sa));
    io_uring_sqe_set_data64(sqe, ud_conn(w, c, OP_CONNECT, 0));
}

/* The connect is in the kernel: cancel it; its completion comes with
 * -ECANCELED (or its real result, if it won the race). */
static int ur_connect_abandon(struct worker *w, struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get(w);

    io_uring_prep_cancel64(sqe, ud_conn(w, c, OP_CONNECT, 0), 0);
    io_uring_sqe_set_data64(sqe, ud_pack(0, 0, OP_IGNORE, 0));
    return 0;
}

static void ur_buf_put(struct worker *w, uint16_t bid);

/* A recv on fd into the buffer ring: multishot (bundled where the kernel
 * has bundles) ending after cap bytes in all if cap, or single-shot. */
static void prep_recv(struct uring_state *st, struct io_uring_sqe *sqe, int fd, int multi,
                      uint32_t cap)
{
    if (multi && st->bundle) {
        io_uring_prep_recv_multishot(sqe, fd, NULL, BUNDLE_MAX * BUF_SIZE, 0);
        sqe->ioprio |= IORING_RECVSEND_BUNDLE;
    } else if (multi) {
        io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    } else {
        io_uring_prep_recv(sqe, fd, NULL, BUF_SIZE, 0);
    }
    if (multi)
        sqe->file_index = cap; /* the kernel's optlen: liburing 2.3 has no name for it */
    /* Armed when the last bytes went out, so the next ones are rarely there
     * yet: poll without a recv attempt that would fail. */
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
}

static void recv_arm(struct worker *w, struct conn *c, int d)
{
    struct io_uring_sqe *sqe = sqe_get(w);
    int multi = st_of(w)->multishot && !(c->io.flags[d] & R_SINGLE);

    prep_recv(st_of(w), sqe, c->fd[d], multi, st_of(w)->recv_cap);
    io_uring_sqe_set_data64(sqe, ud_conn(w, c, OP_RECV, d));
    c->io.flags[d] |= (uint16_t)(R_ARMED | (multi ? R_MULTI : 0));
}

static void recv_stop(struct worker *w, struct conn *c, int d)
{
    uint16_t *f = &c->io.flags[d];
    struct io_uring_sqe *sqe;

    if ((*f & (R_ARMED | R_MULTI | R_STOPPING)) != (R_ARMED | R_MULTI))
        return;
    sqe = sqe_get(w);
    io_uring_prep_cancel64(sqe, ud_conn(w, c, OP_RECV, d), 0);
    io_uring_sqe_set_data64(sqe, ud_pack(0, 0, OP_IGNORE, 0));
    *f |= R_STOPPING;
}

static void stash_push(struct worker *w, struct conn *c, int d, uint16_t bid, uint32_t len)
{
    struct uring_state *st = st_of(w);

    if (stash_count(c->io.flags[d]) == STASH_LIMIT) {
        log_error("worker %d: a recv brought more than %d buffers the relay did not ask for", w->id,
                  STASH_LIMIT);
        abort();
    }
    st->len[bid] = len;
    if (stash_count(c->io.flags[d]))
        st->next[c->io.stash[d][1]] = bid;
    else
        c->io.stash[d][0] = bid;
    c->io.stash[d][1] = bid;
    c->io.flags[d] = (uint16_t)(c->io.flags[d] + STASH_ONE);
}

static uint16_t stash_pop(struct worker *w, struct conn *c, int d)
{
    uint16_t bid = c->io.stash[d][0];

    c->io.stash[d][0] = st_of(w)->next[bid];
    c->io.flags[d] = (uint16_t)(c->io.flags[d] - STASH_ONE);
    return bid;
}

static void ready_push(struct worker *w, struct conn *c, int d)
{
    struct uring_state *st = st_of(w);

    if (c->io.flags[d] & R_READY)
        return;
    if (st->n_ready == st->cap_ready) {
        uint64_t *q = realloc(st->ready, 2 * st->cap_ready * sizeof(*q));
        if (!q) {
            log_error("worker %d: out of memory for the ready list", w->id);
            abort();
        }
        st->ready = q;
        st->cap_ready *= 2;
    }
    c->io.flags[d] |= R_READY;
    st->ready[st->n_ready++] =
        (uint64_t)c->gen << 32 | (uint64_t)conn_index(w, c) << 1 | (uint64_t)d;
}

static void deliver(struct worker *w, struct conn *c, int d, int res, uint16_t bid)
{
    c->io.flags[d] &= (uint16_t)~R_ASKED;
    relay_on_recv(w, c, d, res, bid);
}

/* The relay asks for one result: from the stash if it has one, else from
 * the recv already armed, else from a new one. */
static void ur_recv(struct worker *w, struct conn *c, int d)
{
    uint16_t *f = &c->io.flags[d];

    *f |= R_ASKED;
    if (stash_count(*f) || (*f & R_END))
        ready_push(w, c, d);
    else if (!(*f & R_ARMED))
        recv_arm(w, c, d);
}

/* The relay wants to splice fd[d]: only safe with no recv armed and nothing
 * stashed. Until then it keeps asking, and no multishot is armed again. */
static int ur_recv_idle(struct worker *w, struct conn *c, int d)
{
    uint16_t *f = &c->io.flags[d];

    *f |= R_SINGLE;
    if (*f & R_ARMED) {
        recv_stop(w, c, d);
        return 0;
    }
    return !stash_count(*f) && !(*f & R_END);
}

/* The buffers a recv completion filled, in stream order: the one it names
 * and, for a bundle, those after it in the ring, all full but the last.
 * Returns how many; lens[i] holds the bytes in bids[i]. */
static unsigned recv_buffers(struct worker *w, const struct io_uring_cqe *cqe,
                             uint16_t bids[BUNDLE_MAX], uint32_t lens[BUNDLE_MAX])
{
    struct uring_state *st = st_of(w);
    uint32_t left = cqe->res > 0 ? (uint32_t)cqe->res : 0;
    unsigned n = 0;
    uint16_t at;

    if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
        if (left > 0) {
            log_error("worker %d: a recv completion brought bytes but no buffer", w->id);
            abort();
        }
        return 0;
    }
    bids[0] = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    at = st->slot[bids[0]];
    do {
        if (n > 0)
            bids[n] = st->br->bufs[(uint16_t)(at + n) & st->br_mask].bid;
        lens[n] = left < BUF_SIZE ? left : BUF_SIZE;
        left -= lens[n];
        n++;
    } while (left > 0 && n < BUNDLE_MAX);
    if (left > 0) {
        log_error("worker %d: a recv completion filled more than %d buffers", w->id, BUNDLE_MAX);
        abort();
    }
    return n;
}

static void on_recv_cqe(struct worker *w, struct conn *c, int d, const struct io_uring_cqe *cqe)
{
    uint16_t *f = &c->io.flags[d];
    int stopping = *f & R_STOPPING, asked = (*f & R_ASKED) && !stash_count(*f);
    uint16_t bids[BUNDLE_MAX];
    uint32_t lens[BUNDLE_MAX];
    unsigned n = recv_buffers(w, cqe, bids, lens), i = 0;

    if (!(cqe->flags & IORING_CQE_F_MORE))
        *f &= (uint16_t) ~(R_ARMED | R_MULTI | R_STOPPING);
    if (c->state == CONN_CLOSING) {
        /* Nothing more is relayed; the recv's last completion answers its
         * ask. One that ended with bytes (at its total, or single-shot)
         * before the cancel reached it answers as the cancel would have. */
        for (; i < n; i++)
            ur_buf_put(w, bids[i]);
        if (asked && !(cqe->flags & IORING_CQE_F_MORE))
            deliver(w, c, d, cqe->res > 0 ? -ECANCELED : cqe->res, BUF_NONE);
        return;
    }
    if (cqe->res > 0) {
        for (i = asked ? 1 : 0; i < n; i++)
            stash_push(w, c, d, bids[i], lens[i]);
        if (stash_count(*f) >= STASH_MAX)
            recv_stop(w, c, d);
        if (asked && n > 0)
            deliver(w, c, d, (int)lens[0], bids[0]);
        return;
    }
    for (; i < n; i++)
        ur_buf_put(w, bids[i]);
    if (cqe->res == -ECANCELED && stopping) {
        /* Our own stop: the stream goes on. */
        if (asked)
            recv_arm(w, c, d);
        return;
    }
    if (asked) {
        deliver(w, c, d, cqe->res, BUF_NONE);
    } else {
        c->io.res[d] = cqe->res;
        *f |= R_END;
    }
}

/* Whether a multishot recv given a total ends by itself once that much
 * came in (a kernel without the total refuses it, or goes on). Tried on a
 * socket pair of our own holding twice the total, before the ring carries
 * anything else; every buffer goes back. */
static int recv_cap_works(struct worker *w, struct uring_state *st)
{
    static const uint8_t bytes[2 * BUF_SIZE];
    struct __kernel_timespec second = {.tv_sec = 1};
    struct io_uring_cqe *cqe;
    struct io_uring_sqe *sqe;
    int sv[2], ok = -1, recv_live = 1, cancel_live = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
        return 0;
    if (write(sv[1], bytes, sizeof(bytes)) != (ssize_t)sizeof(bytes) ||
        !(sqe = io_uring_get_sqe(&st->ring))) {
        recv_live = 0;
    } else {
        prep_recv(st, sqe, sv[0], 1, BUF_SIZE);
        io_uring_sqe_set_data64(sqe, 0);
    }
    while ((recv_live || cancel_live) &&
           io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &second, NULL) >= 0) {
        uint16_t bids[BUNDLE_MAX];
        uint32_t lens[BUNDLE_MAX];
        unsigned n = cqe->user_data ? 0 : recv_buffers(w, cqe, bids, lens);

        for (unsigned i = 0; i < n; i++)
            ur_buf_put(w, bids[i]);
        if (cqe->user_data) {
            cancel_live = 0;
        } else {
            if (ok < 0)
                ok = cqe->res == BUF_SIZE && !(cqe->flags & IORING_CQE_F_MORE);
            recv_live = (cqe->flags & IORING_CQE_F_MORE) != 0;
            if (recv_live && !cancel_live && (sqe = io_uring_get_sqe(&st->ring))) {
                io_uring_prep_cancel64(sqe, 0, 0);
                io_uring_sqe_set_data64(sqe, 1);
                cancel_live = 1;
            }
        }
        io_uring_cqe_seen(&st->ring, cqe);
    }
    close(sv[0]);
    close(sv[1]);
    return ok > 0 && !recv_live && !cancel_live;
}

/* Answers asks from the stash; runs after each batch of completions. */
static void run_ready(struct worker *w)
{
    struct uring_state *st = st_of(w);

    for (size_t i = 0; i < st->n_ready; i++) {
        uint64_t t = st->ready[i];
        int d = (int)(t & 1);
        struct conn *c = conn_lookup(w, (uint32_t)(t >> 1) & 0x7fffffff, (uint32_t)(t >> 32));
        uint16_t *f;

        if (!c)
            continue;
        f = &c->io.flags[d];
        *f &= (uint16_t)~R_READY;
        if (!(*f & R_ASKED))
            continue;
        if (stash_count(*f)) {
            uint16_t bid = stash_pop(w, c, d);
            deliver(w, c, d, (int)st->len[bid], bid);
        } else if (*f & R_END) {
            *f &= (uint16_t)~R_END;
            deliver(w, c, d, c->io.res[d], BUF_NONE);
        } else if (!(*f & R_ARMED)) {
            recv_arm(w, c, d);
        }
    }
    st->n_ready = 0;
}

static void ur_send(struct worker *w, struct conn *c, int d)
{
    struct io_uring_sqe *sqe = sqe_get(w);
    const void *p;
    size_t len;

    relay_send_span(w, c, d, &p, &len);
    io_uring_prep_send(sqe, c->fd[!d], p, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud_conn(w, c, OP_SEND, d));
}

static void ur_poll(struct worker *w, struct conn *c, int d, int fd, unsigned events)
{
    struct io_uring_sqe *sqe = sqe_get(w);

    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, ud_conn(w, c, OP_POLL, d));
}

static void ur_poll_in(struct worker *w, struct conn *c, int d, int drained)
{
    ur_poll(w, c, d, c->fd[d], POLLIN);
}

static void ur_poll_out(struct worker *w, struct conn *c, int d)
{
    ur_poll(w, c, d, c->fd[!d], POLLOUT);
}

/* Cancels everything on c's sockets. Submitted at once (measured: leaving
 * them for the next submission saved no io_uring_enter per connection). */
static int ur_cancel(struct worker *w, struct conn *c)
{
    int dropped = 0, armed = 0;

    for (int d = 0; d < 2; d++) {
        uint16_t *f = &c->io.flags[d];

        while (stash_count(*f))
            ur_buf_put(w, stash_pop(w, c, d));
        *f &= (uint16_t)~R_END;
        /* An ask waiting on the ready list has nothing left to answer it. */
        if ((*f & R_ASKED) && !(*f & R_ARMED)) {
            *f &= (uint16_t)~R_ASKED;
            dropped++;
        }
        armed |= *f & R_ARMED;
    }
    if (c->inflight == dropped && !armed)
        return dropped;
    for (int s = 0; s < 2; s++) {
        struct io_uring_sqe *sqe;

        if (c->fd[s] < 0)
            continue;
        sqe = sqe_get(w);
        io_uring_prep_cancel_fd(sqe, c->fd[s], IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, ud_pack(0, 0, OP_IGNORE, 0));
    }
    io_uring_submit(&st_of(w)->ring);
    return dropped;
}

static void ur_buf_put(struct worker *w, uint16_t bid)
{
    struct uring_state *st = st_of(w);

    buf_ring_add(w, st, bid);
    io_uring_buf_ring_advance(st->br, 1);
}

/* Closes fd in the ring: no syscall of its own, and no completion unless it
 * fails. A reset sets SO_LINGER 0 first. */
static void ur_close(struct worker *w, int fd, int reset)
{
    static const struct linger rst = {.l_onoff = 1, .l_linger = 0};
    struct uring_state *st = st_of(w);
    struct io_uring_sqe *sqe;

    if (reset)
        setsockopt_first(w, fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
    sqe = sqe_get(w);
    io_uring_prep_close(sqe, fd);
    sqe->flags |= (uint8_t)st->skip;
    io_uring_sqe_set_data64(sqe, ud_pack(0, 0, OP_IGNORE, 0));
}

static void on_accept_cqe(struct worker *w, uint32_t li, const struct io_uring_cqe *cqe)
{
    struct uring_state *st = st_of(w);

    if (!(cqe->flags & IORING_CQE_F_MORE))
        st->accept_armed[li] = 0;
    if (cqe->res >= 0) {
        relay_on_accept(w, cqe->res, (int)li);
    } else if (err_out_of_resources(-cqe->res)) {
        relay_on_accept_error(w, -cqe->res);
    } else if (cqe->res != -ECANCELED && cqe->res != -ECONNABORTED) {
        log_rl(LOG_LEVEL_WARN, "worker %d: accept: %s", w->id, strerror(-cqe->res));
    }
    if (!st->accept_armed[li] && !w->accept_paused && atomic_load(&w->stop) != 1)
        ur_accept_start(w);
}

static void dispatch(struct worker *w, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    uint32_t idx = (uint32_t)(ud >> 32);
    int d = (int)(ud >> 8) & 1;
    struct conn *c = &w->pool.conns[idx];

    switch ((enum uring_op)(ud & 0xff)) {
    case OP_ACCEPT:
        on_accept_cqe(w, idx, cqe);
        break;
    case OP_SOCKET:
        relay_on_socket(w, c, cqe->res);
        break;
    case OP_CONNECT:
        relay_on_connect(w, c, cqe->res);
        break;
    case OP_RECV:
        /* A multishot recv can outlive its connection: drop what it brings. */
        if (c->state == CONN_FREE || (c->gen & 0xffff) != ((ud >> 16) & 0xffff)) {
            uint16_t bids[BUNDLE_MAX];
            uint32_t lens[BUNDLE_MAX];
            unsigned n = recv_buffers(w, cqe, bids, lens);

            for (unsigned i = 0; i < n; i++)
                ur_buf_put(w, bids[i]);
            break;
        }
        on_recv_cqe(w, c, d, cqe);
        break;
    case OP_SEND:
        relay_on_send(w, c, d, cqe->res);
        break;
    case OP_POLL:
        relay_on_poll(w, c, d, cqe->res);
        break;
    case OP_IGNORE:
        break;
    }
}

/* Submits what is queued and waits as io_uring_submit_and_wait_timeout()
 * does, with a minimum wait: once min_wait_us has passed, one completion is
 * enough; before, the kernel gathers up to wait_nr. */
static int enter_batched(struct uring_state *st, unsigned wait_nr, struct __kernel_timespec *ts)
{
    struct io_uring_sq *sq = &st->ring.sq;
    struct {
        uint64_t sigmask;
        uint32_t sigmask_sz;
        uint32_t min_wait_usec;
        uint64_t ts;
    } arg = {0, _NSIG / 8, st->min_wait_us, (uint64_t)(uintptr_t)ts};
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, submit;
    int fd = st->ring.ring_fd, ret;

    if (sq->sqe_head != sq->sqe_tail) {
        sq->sqe_head = sq->sqe_tail;
        __atomic_store_n(sq->ktail, sq->sqe_tail, __ATOMIC_RELEASE);
    }
    submit = *sq->ktail - __atomic_load_n(sq->khead, __ATOMIC_ACQUIRE);
    if (st->reg_fd) {
        fd = st->ring.enter_ring_fd;
        flags |= IORING_ENTER_REGISTERED_RING;
    }
    ret = (int)syscall(__NR_io_uring_enter, fd, submit, wait_nr, flags, &arg, sizeof(arg));
    return ret < 0 ? -errno : ret;
}

static void ur_run(struct worker *w)
{
    struct uring_state *st = st_of(w);

    while (atomic_load_explicit(&w->stop, memory_order_relaxed) != 1) {
        struct __kernel_timespec ts = {0};
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        int ret;

        ts.tv_nsec = (long long)worker_ms_to_tick(w) * 1000000;
        if (st->min_wait_us && !st->n_ready)
            ret = enter_batched(st, BATCH_MAX, &ts);
        else
            ret = io_uring_submit_and_wait_timeout(&st->ring, &cqe, st->n_ready ? 0 : 1, &ts, NULL);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
            log_rl(LOG_LEVEL_ERROR, "worker %d: io_uring_enter: %s", w->id, strerror(-ret));
        worker_clock(w);
        io_uring_for_each_cqe(&st->ring, head, cqe)
        {
            dispatch(w, cqe);
            n++;
        }
        io_uring_cq_advance(&st->ring, n);
        run_ready(w);
        worker_tick(w);
    }
    /* The closes (and resets) the last connections queued: the kernel runs
     * them as it takes them, so they happen before the worker is gone. */
    io_uring_submit(&st->ring);
}

const struct io_backend io_uring_backend = {
    .name = "io_uring",
    .init = ur_init,
    .fini = ur_fini,
    .run = ur_run,
    .accept_start = ur_accept_start,
    .accept_stop = ur_accept_stop,
    .accept_idle = ur_accept_idle,
    .attach = ur_attach,
    .socket = ur_socket,
    .connect = ur_connect,
    .connect_abandon = ur_connect_abandon,
    .recv = ur_recv,
    .recv_idle = ur_recv_idle,
    .send = ur_send,
    .poll_in = ur_poll_in,
    .poll_out = ur_poll_out,
    .cancel = ur_cancel,
    .buf_put = ur_buf_put,
    .close = ur_close,
};
