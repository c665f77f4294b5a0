/* The relay's types: a connection and its two directions, and the pools a
 * worker's connections draw on (slots, buffers, pipes, the queues of those
 * waiting for one, timer lists). Types only: the functions are in relay.h,
 * relay_pool.h, relay_handshake.h and relay_account.h. */
#ifndef RINGRELAY_RELAY_T_H
#define RINGRELAY_RELAY_T_H

#include "access_log.h"
#include "addr.h"
#include "config.h"
#include "io.h"
#include "list.h"
#include "pool.h"
#include "proxy.h"

#include <stdatomic.h>
#include <stdint.h>

#define BUF_SIZE (16 * 1024U)
#define BUF_HEADROOM 128 /* room to prepend the PROXY header: >= PROXY_HDR_MAX */
#define BUF_STRIDE (BUF_SIZE + BUF_HEADROOM)
#define BUF_NONE 0xffff

enum side { SIDE_CLIENT = 0, SIDE_BACKEND = 1 };

/* Before the backend connection exists: CONN_HEADER waits for a trusted
 * client's inbound PROXY header, CONN_PEEK for its ClientHello (to route
 * by server name). */
enum conn_state { CONN_FREE, CONN_HEADER, CONN_PEEK, CONN_CONNECTING, CONN_OPEN, CONN_CLOSING };

#define TIMER_OWNERS                                                                               \
    (CONFIG_MAX_BACKENDS > CONFIG_MAX_LISTENERS ? CONFIG_MAX_BACKENDS : CONFIG_MAX_LISTENERS)

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
#define CONN_UNTRUSTED 0x01   /* inbound PROXY listener, untrusted client: refuse a header */
#define CONN_CLIENT_TLS 0x02  /* the client's first bytes were a TLS handshake record */
#define CONN_LOWAT 0x04       /* SO_RCVLOWAT raised on the client socket while peeking */
#define CONN_HAS_DST 0x08     /* dst holds the destination a trusted inbound header gave */
#define CONN_RETRYING 0x10    /* its connect timed out: the next server follows its end */
#define CONN_ON_BACKEND 0x20  /* counted as one of its backend's connections */
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
    uint32_t off;       /* copy mode: unsent bytes start at buffer + off */
    uint32_t len;       /*            and are len long */
    uint32_t in_pipe;   /* splice mode: bytes sitting in the pipe */
    uint16_t buf;       /* buffer held, or BUF_NONE */
    int16_t pipe;       /* pipe held, or -1 */
    uint8_t flags;      /* DIR_* */
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
    uint64_t open_ms;         /* when the backend connection was established */
    uint8_t *hdr_ext;         /* the outbound header when it carries TLVs (malloc'ed) */
    uint8_t *hdr_in;          /* malloc'ed only when an inbound header arrives split */
    struct conn_extra *extra; /* malloc'ed for the access log only */
    int fd[2];
    uint32_t id;
    uint32_t gen;      /* bumped on free: stale back end events are ignored */
    struct io_conn io; /* the back end's own, per side */
    uint16_t hdr_len, hdr_sent;
    uint16_t hdr_in_len; /* bytes of a split inbound header held in hdr_in */
    uint8_t state;
    uint8_t inflight; /* back end operations whose completion is pending */
    uint8_t timer_kind;
    uint8_t flags;           /* CONN_* */
    uint8_t be_index;        /* the backend in the configuration */
    uint8_t li;              /* the listener that accepted it */
    int16_t server;          /* the backend's server it connects to; -1: none yet */
    struct pool_tried tried; /* servers tried so far */
    uint8_t rgen;            /* the worker's runtime generation it runs on */
    uint8_t end;             /* why it ended (enum conn_end): the first cause wins */
    uint8_t reset;           /* closed with a reset: its sockets close with SO_LINGER 0 */
    uint64_t src_key;        /* its client's key in the per-source count */
    /* Microseconds: when it was accepted, then after that when its last
     * connect began, when that completed, and when the backend's first
     * byte came. */
    uint64_t start_us;
    uint32_t t_connect, t_open, t_first;
    struct dir dir[2];
    union sockaddr_inet peer; /* the client: from a trusted inbound header, or the socket */
    union sockaddr_inet dst;  /* a trusted inbound header's destination, or the listener's
                               * own address; AF_UNSPEC until known */
    uint8_t hdr[PROXY_HDR_MAX];
};

/* What the relay keeps per runtime generation: one timer list per timeout,
 * per kind and per backend (connect, idle, fin) or listener (header, peek)
 * whose setting it is. Each list holds connections with one timeout, in
 * order of their last activity, so only the heads can have expired. */
struct relay_gen {
    struct list_head timers[TIMER_KINDS][TIMER_OWNERS];
    uint32_t timeout_ms[TIMER_KINDS][TIMER_OWNERS];
    uint32_t touch_ms[TIMER_KINDS][TIMER_OWNERS]; /* how often activity restarts a timer */
    struct pool_rr rr[CONFIG_MAX_BACKENDS];       /* this worker's round-robin state */
};

struct pipe_pair {
    int r, w;
    uint32_t cap; /* bytes the pipe holds */
};

#define FD_WAIT_MAX 64 /* connections per worker waiting for a descriptor */

struct fd_waiter {
    uint32_t index, gen;
};

/* What a worker's connections draw on, sized at start. */
struct relay_pool {
    struct conn *conns;
    uint32_t n_conns;          /* slots: --max-connections, as any worker may hold them all */
    atomic_uint *active_total; /* open connections over all workers */
    uint32_t *free_conns;      /* stack of indexes of slots used before and free now */
    uint32_t n_free;
    uint32_t n_used; /* slots [0, n_used) have been used; the rest are untouched */
    uint32_t next_id;

    uint8_t *bufs; /* n_bufs * BUF_STRIDE */
    uint32_t n_bufs;
    uint32_t *starved; /* (index << 1 | side) of dirs waiting for a buffer */
    uint32_t n_starved;

    struct pipe_pair *pipes; /* max_pipes slots, made on first use; r == -1: not yet */
    uint16_t *free_pipes;    /* stack of slot indexes, all pipes empty */
    uint32_t n_pipes_free;
    uint32_t max_pipes;

    /* Connections whose backend socket could not be made for want of a
     * descriptor, oldest first; tried again at each tick. */
    struct fd_waiter fd_wait[FD_WAIT_MAX];
    uint32_t n_fd_wait;
};

#endif
