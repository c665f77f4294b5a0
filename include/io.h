/* The io back end interface: io_uring or epoll behind the same calls, so
 * the connection state machine (relay.c) does not know which one runs it.
 *
 * Every operation the relay starts completes exactly once, through the
 * matching relay_on_*() call, unless cancel() reports it dropped. */
#ifndef RINGRELAY_IO_H
#define RINGRELAY_IO_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct sockaddr;
struct worker;

/* What a back end keeps in each connection, per side; only the back end
 * reads or writes it. Results follow a completion's res: >= 0, or -errno.
 * epoll keeps readiness and wants in flags, and an immediate connect's
 * result in res[SIDE_BACKEND]; io_uring keeps its recv state in flags, the
 * buffers its multishot recv got before the relay asked for them in stash
 * (first and last, chained through the back end's own table), and the
 * result that ended the recv in res. */
struct io_conn {
    int32_t res[2];
    uint16_t flags[2];
    uint16_t stash[2][2];
};

struct io_backend {
    const char *name;
    /* In the worker's thread: set up. Returns 0 or -errno. */
    int (*init)(struct worker *w);
    void (*fini)(struct worker *w);
    /* Loops until w->stop; calls worker_tick() when a tick is due. */
    void (*run)(struct worker *w);
    void (*accept_start)(struct worker *w);
    void (*accept_stop)(struct worker *w);
    /* Whether no accept is armed or in flight (after accept_stop). */
    int (*accept_idle)(struct worker *w);
    /* c's client socket joined the worker (for back ends that register
     * sockets; connect() registers the backend socket itself). */
    void (*attach)(struct worker *w, struct conn *c, int side);
    /* A non-blocking socket of family for c's backend side; completes with
     * relay_on_socket(). */
    void (*socket)(struct worker *w, struct conn *c, int family);
    /* TCP_NODELAY on fd[SIDE_BACKEND] (an IP socket), then connect to sa. */
    void (*connect)(struct worker *w, struct conn *c, const struct sockaddr *sa);
    /* Gives up c's connect in progress (to retry elsewhere): returns 1 if it
     * is gone at once, 0 if it will complete, with -ECANCELED. */
    int (*connect_abandon)(struct worker *w, struct conn *c);
    /* Receive into a buffer the back end picks from the worker's pool. */
    void (*recv)(struct worker *w, struct conn *c, int d);
    /* Whether fd[d] can be spliced now: no recv of the back end's is armed
     * on it and nothing it read ahead is waiting. If not, the back end works
     * towards it and the relay keeps receiving meanwhile. */
    int (*recv_idle)(struct worker *w, struct conn *c, int d);
    /* Send relay_send_span(c, d) to fd[!d]. */
    void (*send)(struct worker *w, struct conn *c, int d);
    /* Wait until fd[d] is readable; drained says the caller has just seen
     * EAGAIN there (otherwise it is yielding and fd[d] may still be ready). */
    void (*poll_in)(struct worker *w, struct conn *c, int d, int drained);
    /* Wait until fd[!d] is writable; the caller has just seen EAGAIN. */
    void (*poll_out)(struct worker *w, struct conn *c, int d);
    /* Cancels c's operations; returns how many were dropped outright
     * (they will not complete), the rest complete with -ECANCELED. */
    int (*cancel)(struct worker *w, struct conn *c);
    /* Gives a buffer back to the pool the back end receives into. */
    void (*buf_put)(struct worker *w, uint16_t bid);
    /* Closes fd, which nothing uses any more (no operation on it is in
     * flight); reset: with SO_LINGER 0, so the peer gets RST, not FIN. */
    void (*close)(struct worker *w, int fd, int reset);
};

extern const struct io_backend io_uring_backend;
extern const struct io_backend io_epoll_backend;

/* Whether io_uring with the features ringrelay needs works here. */
int io_uring_usable(void);

/* Completions, implemented by relay.c. res is >= 0 or -errno; bid is
 * BUF_NONE when no buffer. */
/* A client on the worker's listening socket listen_fd[bind]. */
void relay_on_accept(struct worker *w, int fd, int bind);
void relay_on_socket(struct worker *w, struct conn *c, int res);
void relay_on_connect(struct worker *w, struct conn *c, int res);
void relay_on_recv(struct worker *w, struct conn *c, int d, int res, uint16_t bid);
void relay_on_send(struct worker *w, struct conn *c, int d, int res);
void relay_on_poll(struct worker *w, struct conn *c, int d, int res);
/* Accept failed with errno err (EMFILE and the like): pause with back-off. */
void relay_on_accept_error(struct worker *w, int err);

/* What a send on dir d should write next. */
void relay_send_span(struct worker *w, struct conn *c, int d, const void **p, size_t *len);

#endif
