/* A worker: one thread, one core, one io back end, its own listeners,
 * connection pool, buffers, pipes and timers. Nothing here is shared
 * between workers, so the data path takes no lock. */
#ifndef RINGRELAY_WORKER_H
#define RINGRELAY_WORKER_H

#include "access_log.h"
#include "addr.h"
#include "list.h"
#include "config.h"
#include "proxy.h"
#include "runtime.h"
#include "stats.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define BUF_SIZE (16 * 1024U)
#define BUF_HEADROOM 128 /* room to prepend the PROXY header: >= PROXY_HDR_MAX */
#define BUF_STRIDE (BUF_SIZE + BUF_HEADROOM)
#define BUF_NONE 0xffff

enum side { SIDE_CLIENT = 0, SIDE_BACKEND = 1 };

/* Before the backend connection exists: CONN_HEADER waits for a trusted
 * client's inbound PROXY header, CONN_PEEK for its ClientHello (to route
 * by server name). */
enum conn_state {
    CONN_FREE,
    CONN_HEADER,
    CONN_PEEK,
    CONN_CONNECTING,
    CONN_OPEN,
    CONN_CLOSING
};

#define TIMER_OWNERS (CONFIG_MAX_BACKENDS > CONFIG_MAX_LISTENERS ? CONFIG_MAX_BACKENDS \
                                                               : CONFIG_MAX_LISTENERS)

enum timer_kind {
    TIMER_CONNECT,
    TIMER_IDLE,
    TIMER_FIN,
    TIMER_HEADER,
    TIMER_PEEK,
    TIMER_KINDS,
    TIMER_NONE = TIMER_KINDS
};

/* Connection flags. */
#define CONN_UNTRUSTED 0x01 /* inbound PROXY listener, untrusted client: refuse a header */
#define CONN_CLIENT_TLS 0x02 /* the client's first bytes were a TLS handshake record */
#define CONN_LOWAT 0x04      /* SO_RCVLOWAT raised on the client socket while peeking */
#define CONN_HAS_DST 0x08    /* dst holds the destination a trusted inbound header gave */
#define CONN_RETRYING 0x10   /* its connect timed out: the next server follows its end */
#define CONN_ON_BACKEND 0x20 /* counted as one of its backend's connections */
#define CONN_SRC_COUNTED 0x40 /* holds a place in the per-source count (src_key) */
#define CONN_WAIT_FD 0x80     /* no descriptor for its backend socket yet: in fd_wait */

/* Direction flags. */
#define DIR_RECV 0x01    /* recv or read-readiness wait pending on the source */
#define DIR_SEND 0x02    /* send or write-readiness wait pending on the destination */
#define DIR_EOF 0x04     /* the source sent FIN */
#define DIR_DONE 0x08    /* FIN passed on: destination shut for writing */
#define DIR_SPLICE 0x10  /* moving bytes with splice(2) through a pipe */
#define DIR_STARVED 0x20 /* recv found no free buffer; waits for one */
#define DIR_HDR 0x40     /* the PROXY header alone is being sent */
#define DIR_BULK 0x80    /* looks like a bulk stream: splice once the back end lets go */

/* Bytes read from fd[d] and written to fd[!d], for d a side. */
struct dir {
    uint32_t off;     /* copy mode: unsent bytes start at buffer + off */
    uint32_t len;     /*            and are len long */
    uint32_t in_pipe; /* splice mode: bytes sitting in the pipe */
    uint16_t buf;     /* buffer held, or BUF_NONE */
    int16_t pipe;     /* pipe held, or -1 */
    uint8_t flags;    /* DIR_* */
    uint32_t win_reads; /* copy mode: reads in the current window ... */
    uint32_t win_bytes; /* ... and the bytes they brought */
    uint64_t moved;
};

/* What only the access log needs, kept when it is known; allocated then,
 * and only while the access log is on. */
struct conn_extra {
    union sockaddr_inet direct; /* the socket's peer, when a PROXY header named the client */
    char sni[ACCESS_SNI_MAX];
    char alpn[ACCESS_ALPN_MAX];
};

/* One relayed connection. Owns fd[] and whatever its dirs hold; only
 * relay.c's conn_free() releases them, once no operation is in flight. */
struct conn {
    struct list_head timer;
    uint64_t active_ms;
    uint64_t open_ms; /* when the backend connection was established */
    const struct sockaddr *be; /* the backend chosen for this connection */
    uint8_t *hdr_ext;  /* the outbound header when it carries TLVs (malloc'ed) */
    uint8_t *hdr_in;   /* malloc'ed only when an inbound header arrives split */
    struct conn_extra *extra; /* malloc'ed for the access log only */
    int fd[2];
    uint32_t id;
    uint32_t gen; /* bumped on free: stale back end events are ignored */
    /* The back end's own state, per side: epoll keeps readiness in io_flags
     * and an immediate connect result in io_res[SIDE_BACKEND]; io_uring keeps
     * the buffers its multishot recv got before the relay asked for them
     * (io_stash: first and last, chained through the back end's own table)
     * and the result that ended the recv (io_res). */
    int32_t io_res[2];
    uint16_t io_flags[2];
    uint16_t io_stash[2][2];
    uint16_t hdr_len, hdr_sent;
    uint16_t hdr_in_len; /* bytes of a split inbound header held in hdr_in */
    uint8_t state;
    uint8_t inflight; /* back end operations whose completion is pending */
    uint8_t timer_kind;
    uint8_t flags;    /* CONN_* */
    uint8_t be_index; /* the backend in the configuration */
    uint8_t li;       /* the listener that accepted it */
    int16_t server;   /* the backend's server it connects to; -1: none yet */
    struct pool_tried tried; /* servers tried so far */
    uint8_t rgen;     /* the worker's runtime generation it runs on */
    uint8_t end;      /* why it ended (enum conn_end): the first cause wins */
    uint64_t src_key; /* its client's key in the per-source count */
    /* Microseconds: when it was accepted, then after that when its last
     * connect began, when that completed, and when the backend's first
     * byte came. */
    uint64_t start_us;
    uint32_t t_connect, t_open, t_first;
    struct dir dir[2];
    union sockaddr_inet peer; /* the client: from a trusted inbound header, or the socket */
    union sockaddr_inet dst;
    uint8_t hdr[PROXY_HDR_MAX];
};

/* Where c's outbound header is built. */
static inline uint8_t *conn_hdr(struct conn *c)
{
    return c->hdr_ext ? c->hdr_ext : c->hdr;
}


struct pipe_pair {
    int r, w;
    uint32_t cap; /* bytes the pipe holds */
};

struct io_backend;

#define WORKER_GENS 4

/* One runtime as a worker uses it, with what depends on its settings. */
struct worker_gen {
    struct runtime *rt; /* shared by all workers; pools change through atomics only */
    uint32_t conns;     /* this worker's connections on it */
    /* One list per timeout: per kind, and per backend (connect, idle, fin)
     * or listener (header, peek) whose setting it is. */
    struct list_head timers[TIMER_KINDS][TIMER_OWNERS];
    uint32_t timeout_ms[TIMER_KINDS][TIMER_OWNERS];
    uint32_t touch_ms[TIMER_KINDS][TIMER_OWNERS]; /* how often activity restarts a timer */
    struct pool_rr rr[CONFIG_MAX_BACKENDS];     /* this worker's round-robin state */
};

/* A new configuration for a worker, handed over by the main thread. */
struct worker_update {
    struct runtime *rt; /* holds a reference for the worker */
    int listen_fd[RUNTIME_MAX_BINDS];
    uint8_t listen_li[RUNTIME_MAX_BINDS];
    int n_listen;
    int close_fd[RUNTIME_MAX_BINDS]; /* listening sockets no longer wanted */
    int n_close;
};

#define FD_WAIT_MAX 64 /* connections per worker waiting for a descriptor */

struct worker {
    int id;
    int cpu; /* -1: not pinned */
    pthread_t thread;
    const struct io_backend *io;
    void *io_state;
    atomic_int stop; /* set to 1 to make the thread return */
    int init_result;
    sem_t *started;  /* posted once init_result is known */

    int listen_fd[RUNTIME_MAX_BINDS];
    uint8_t listen_li[RUNTIME_MAX_BINDS]; /* the listener each socket belongs to */
    int n_listen;
    uint8_t accept_paused;  /* ACCEPT_PAUSE_* reasons */
    uint64_t accept_resume_ms;
    uint32_t accept_backoff_ms;

    /* Connections whose backend socket could not be made for want of a
     * descriptor, oldest first; tried again at each tick. */
    struct fd_waiter {
        uint32_t index, gen;
    } fd_wait[FD_WAIT_MAX];
    uint32_t n_fd_wait;

    struct conn *conns;
    uint32_t n_conns; /* slots: --max-connections, as any worker may hold them all */
    atomic_uint *active_total; /* open connections over all workers */
    uint32_t *free_conns; /* stack of indexes of slots used before and free now */
    uint32_t n_free;
    uint32_t n_used; /* slots [0, n_used) have been used; the rest are untouched */
    uint32_t next_id;

    uint8_t *bufs; /* n_bufs * BUF_STRIDE */
    uint32_t n_bufs;
    uint32_t *starved; /* (index << 1 | side) of dirs waiting for a buffer */
    uint32_t n_starved;

    struct pipe_pair *pipes; /* max_pipes slots; r == -1: not made yet */
    uint16_t *free_pipes;    /* stack of slot indexes, all pipes empty */
    uint32_t n_pipes_free;
    uint32_t max_pipes;

    /* The runtimes this worker has connections on: new connections take
     * gens[cur_gen]; a connection keeps the one it started with. */
    struct worker_gen gens[WORKER_GENS];
    uint8_t cur_gen;
    _Atomic(struct worker_update *) update; /* set by main; taken at a tick */
    uint64_t now_ms;
    uint64_t next_tick_ms;

    struct stats_block *st; /* this worker's counters: only it writes them */
    /* show conns: main's request, taken (set to NULL) at a tick, then the
     * connections written to it and dump_done set. */
    _Atomic(FILE *) dump;
    atomic_int dump_done;
    /* Stopping: main sets drain (stop accepting, close the listeners, let
     * connections finish), then maybe close_all (reset what is left). */
    atomic_int drain, close_all;
    uint8_t drained; /* listeners closed */
    struct access_ring *alog; /* NULL: no access log */
};

/* The runtime generation a connection runs on, and its configuration. */
static inline struct worker_gen *conn_gen(struct worker *w, const struct conn *c)
{
    return &w->gens[c->rgen];
}

static inline struct runtime *conn_rt(const struct worker *w, const struct conn *c)
{
    return w->gens[c->rgen].rt;
}

static inline const struct config *conn_cfg(const struct worker *w, const struct conn *c)
{
    return &w->gens[c->rgen].rt->cfg;
}

#define ACCEPT_PAUSE_ERROR 0x2  /* EMFILE/ENFILE/ENOBUFS: backing off */
#define ACCEPT_PAUSE_RELOAD 0x4 /* switching listening sockets to a new configuration */
#define ACCEPT_PAUSE_DRAIN 0x8  /* stopping: never resumed */

#define ACCEPT_BACKOFF_MIN_MS 100 /* doubling up to the max while accept fails */
#define ACCEPT_BACKOFF_MAX_MS 1000
#define TICK_MS 100
#define PIPES_PER_WORKER 128 /* created on first use */

static inline uint8_t *buf_data(struct worker *w, uint16_t bid)
{
    return w->bufs + (size_t)bid * BUF_STRIDE;
}

/* Sets up pools sized from rt; listen_fd[] are the worker's own listeners
 * (listen_li[i]: the listener of listen_fd[i]), active_total the count of
 * open connections all workers share. Returns 0 or -errno. */
int worker_init(struct worker *w, int id, struct runtime *rt, const int *listen_fd,
                const uint8_t *listen_li, int n_listen, atomic_uint *active_total);

/* The setting a timer of this kind runs on: the connection's backend, or
 * for the header and peek timeouts its listener. */
static inline int timer_owner(const struct conn *c, int kind)
{
    return kind == TIMER_HEADER || kind == TIMER_PEEK ? c->li : c->be_index;
}

void worker_fini(struct worker *w);

/* Starts the thread. The thread sets up its back end, then runs it until
 * stop is set. */
int worker_start(struct worker *w, const struct io_backend *io, int cpu, sem_t *started);

/* Reads the monotonic clock into w->now_ms. */
void worker_clock(struct worker *w);

/* Milliseconds until the next tick is due (for the back end's wait). */
int worker_ms_to_tick(struct worker *w);

/* Stops accepting for reason (one of ACCEPT_PAUSE_*), on top of any other. */
void worker_accept_pause(struct worker *w, uint8_t reason);

/* Clears one reason accepting was paused for; accepts again if none is left. */
void worker_accept_resume(struct worker *w, uint8_t reason);

/* Has w write its open connections to out at its next tick; waits up to
 * timeout_ms for it to start. Returns 0, or -ETIMEDOUT (out was not used). */
int worker_dump_conns(struct worker *w, FILE *out, int timeout_ms);

/* Runs timers and accept back-off; the back end calls it when a tick is due. */
void worker_tick(struct worker *w);

#endif
