/* io_uring back end: multishot accept, connect, buffer-selected recv from a
 * per-worker provided-buffer ring, send, and poll for the splice path.
 * user_data packs (connection index, op, direction): nothing is allocated
 * per operation. */
#include "io.h"

#include "log.h"
#include "relay.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RING_ENTRIES 2048
#define CQ_ENTRIES (RING_ENTRIES * 8)
#define BUF_GROUP 0

enum uring_op { OP_IGNORE, OP_ACCEPT, OP_CONNECT, OP_RECV, OP_SEND, OP_POLL };

struct uring_state {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    unsigned br_mask;
    uint8_t accept_armed[OPTIONS_MAX_LISTEN];
};

static inline uint64_t ud_pack(uint32_t idx, enum uring_op op, int d)
{
    return (uint64_t)idx << 32 | (uint64_t)d << 8 | (uint64_t)op;
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

static int ring_setup(struct io_uring *ring)
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
        if (ret == 0)
            break;
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
    return 0;
}

static int buf_ring_setup(struct worker *w, struct uring_state *st)
{
    struct io_uring_buf_reg reg;
    int ret;

    st->br_bytes = sizeof(struct io_uring_buf) * w->n_bufs;
    st->br = mmap(NULL, st->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (st->br == MAP_FAILED) {
        st->br = NULL;
        return -ENOMEM;
    }
    io_uring_buf_ring_init(st->br);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)st->br;
    reg.ring_entries = w->n_bufs;
    reg.bgid = BUF_GROUP;
    ret = io_uring_register_buf_ring(&st->ring, &reg, 0);
    if (ret < 0)
        return ret;
    st->br_mask = (unsigned)io_uring_buf_ring_mask(w->n_bufs);
    for (uint32_t i = 0; i < w->n_bufs; i++)
        io_uring_buf_ring_add(st->br, buf_data(w, (uint16_t)i) + BUF_HEADROOM, BUF_SIZE,
                              (unsigned short)i, (int)st->br_mask, (int)i);
    io_uring_buf_ring_advance(st->br, (int)w->n_bufs);
    return 0;
}

static void ur_fini(struct worker *w)
{
    struct uring_state *st = st_of(w);

    if (!st)
        return;
    io_uring_queue_exit(&st->ring);
    if (st->br)
        munmap(st->br, st->br_bytes);
    free(st);
    w->io_state = NULL;
}

static int ur_init(struct worker *w)
{
    struct uring_state *st = calloc(1, sizeof(*st));
    int ret;

    if (!st)
        return -ENOMEM;
    ret = ring_setup(&st->ring);
    if (ret < 0) {
        free(st);
        return ret;
    }
    w->io_state = st;
    ret = buf_ring_setup(w, st);
    if (ret < 0) {
        ur_fini(w);
        return ret;
    }
    /* Saves a file-table lookup on every io_uring_enter(). */
    (void)io_uring_register_ring_fd(&st->ring);
    return 0;
}

int io_uring_usable(void)
{
    struct io_uring ring;

    if (ring_setup(&ring) < 0)
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
        io_uring_sqe_set_data64(sqe, ud_pack((uint32_t)i, OP_ACCEPT, 0));
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
        io_uring_prep_cancel64(sqe, ud_pack((uint32_t)i, OP_ACCEPT, 0), 0);
        io_uring_sqe_set_data64(sqe, ud_pack(0, OP_IGNORE, 0));
    }
}

static void ur_attach(struct worker *w, struct conn *c, int side)
{
}

static void ur_connect(struct worker *w, struct conn *c, const struct sockaddr *sa)
{
    struct io_uring_sqe *sqe = sqe_get(w);

    io_uring_prep_connect(sqe, c->fd[SIDE_BACKEND], sa, addr_len(sa));
    io_uring_sqe_set_data64(sqe, ud_pack(conn_index(w, c), OP_CONNECT, 0));
}

static void ur_recv(struct worker *w, struct conn *c, int d)
{
    struct io_uring_sqe *sqe = sqe_get(w);

    io_uring_prep_recv(sqe, c->fd[d], NULL, BUF_SIZE, 0);
    /* A recv is started when the last bytes went out, so the next ones are
     * rarely there yet: arm the poll without a recv attempt that would fail. */
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, ud_pack(conn_index(w, c), OP_RECV, d));
}

static void ur_send(struct worker *w, struct conn *c, int d)
{
    struct io_uring_sqe *sqe = sqe_get(w);
    const void *p;
    size_t len;

    relay_send_span(w, c, d, &p, &len);
    io_uring_prep_send(sqe, c->fd[!d], p, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud_pack(conn_index(w, c), OP_SEND, d));
}

static void ur_poll(struct worker *w, struct conn *c, int d, int fd, unsigned events)
{
    struct io_uring_sqe *sqe = sqe_get(w);

    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, ud_pack(conn_index(w, c), OP_POLL, d));
}

static void ur_poll_in(struct worker *w, struct conn *c, int d, int drained)
{
    ur_poll(w, c, d, c->fd[d], POLLIN);
}

static void ur_poll_out(struct worker *w, struct conn *c, int d)
{
    ur_poll(w, c, d, c->fd[!d], POLLOUT);
}

/* Cancels everything on c's sockets. Submitted at once: the fds close when
 * the last completion arrives, and a cancel left in the queue could then
 * match a new socket that reused the number. */
static int ur_cancel(struct worker *w, struct conn *c)
{
    if (c->inflight == 0)
        return 0;
    for (int s = 0; s < 2; s++) {
        struct io_uring_sqe *sqe;

        if (c->fd[s] < 0)
            continue;
        sqe = sqe_get(w);
        io_uring_prep_cancel_fd(sqe, c->fd[s], IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, ud_pack(0, OP_IGNORE, 0));
    }
    io_uring_submit(&st_of(w)->ring);
    return 0;
}

static void ur_buf_put(struct worker *w, uint16_t bid)
{
    struct uring_state *st = st_of(w);

    io_uring_buf_ring_add(st->br, buf_data(w, bid) + BUF_HEADROOM, BUF_SIZE, bid,
                          (int)st->br_mask, 0);
    io_uring_buf_ring_advance(st->br, 1);
}

static void on_accept_cqe(struct worker *w, uint32_t li, const struct io_uring_cqe *cqe)
{
    struct uring_state *st = st_of(w);

    if (!(cqe->flags & IORING_CQE_F_MORE))
        st->accept_armed[li] = 0;
    if (cqe->res >= 0) {
        relay_on_accept(w, cqe->res);
    } else if (cqe->res == -EMFILE || cqe->res == -ENFILE || cqe->res == -ENOBUFS ||
               cqe->res == -ENOMEM) {
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
    struct conn *c = &w->conns[idx];
    uint16_t bid;

    switch ((enum uring_op)(ud & 0xff)) {
    case OP_ACCEPT:
        on_accept_cqe(w, idx, cqe);
        break;
    case OP_CONNECT:
        relay_on_connect(w, c, cqe->res);
        break;
    case OP_RECV:
        bid = cqe->flags & IORING_CQE_F_BUFFER ? (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT)
                                               : BUF_NONE;
        relay_on_recv(w, c, d, cqe->res, bid);
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

static void ur_run(struct worker *w)
{
    struct uring_state *st = st_of(w);

    while (atomic_load_explicit(&w->stop, memory_order_relaxed) != 1) {
        struct __kernel_timespec ts = {0};
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        int ret;

        ts.tv_nsec = (long long)worker_ms_to_tick(w) * 1000000;
        ret = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &ts, NULL);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
            log_rl(LOG_LEVEL_ERROR, "worker %d: io_uring_enter: %s", w->id, strerror(-ret));
        worker_clock(w);
        io_uring_for_each_cqe(&st->ring, head, cqe)
        {
            dispatch(w, cqe);
            n++;
        }
        io_uring_cq_advance(&st->ring, n);
        worker_tick(w);
    }
}

const struct io_backend io_uring_backend = {
    .name = "io_uring",
    .init = ur_init,
    .fini = ur_fini,
    .run = ur_run,
    .accept_start = ur_accept_start,
    .accept_stop = ur_accept_stop,
    .attach = ur_attach,
    .connect = ur_connect,
    .recv = ur_recv,
    .send = ur_send,
    .poll_in = ur_poll_in,
    .poll_out = ur_poll_out,
    .cancel = ur_cancel,
    .buf_put = ur_buf_put,
};
