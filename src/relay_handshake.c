/* The handshake of a client connection, before its backend connection:
 * a trusted client's inbound PROXY header, the ClientHello peek that routes
 * by server name, who may connect (allow and deny lists, per-source
 * limits), and the outbound PROXY header.
 * Every step returns what the state machine does next (enum hs_next);
 * none starts an io operation or closes a connection itself. */
#include "relay_handshake.h"

#include "cidr.h"
#include "clienthello.h"
#include "log.h"
#include "proxy_parse.h"
#include "relay_account.h"
#include "relay_pool.h"
#include "sniff.h"
#include "srclimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static uint64_t instance_id;

void relay_set_instance(uint64_t id)
{
    instance_id = id;
}

static const struct config_listener *conn_listener(const struct worker *w, const struct conn *c)
{
    return &conn_cfg(w, c)->listeners[c->li];
}

/* ---- the outbound PROXY header ---- */

/* Appends one TLV to c's outbound header; one that does not fit is left
 * out (the header stays valid). */
static void conn_add_tlv(struct worker *w, struct conn *c, uint8_t type, const void *v, size_t len)
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
    if (!(c->flags & CONN_HAS_DST) && c->dst.sa.sa_family == AF_UNSPEC) {
        if (getsockname(c->fd[SIDE_CLIENT], &local.sa, &len) == -1)
            return -errno;
        dst = &local.sa;
    }
    if ((b->tlvs || b->n_tlv_pass) && !(c->hdr_ext = malloc(conn_rt(w, c)->hdr_cap[c->be_index])))
        return -ENOMEM;
    n = proxy_encode(b->proxy_protocol, conn_hdr(c),
                     c->hdr_ext ? conn_rt(w, c)->hdr_cap[c->be_index] : sizeof(c->hdr), &c->peer.sa,
                     dst);
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

/* The backend is chosen: build the header for it, then connect. */
static enum hs_next conn_prepare(struct worker *w, struct conn *c, int be,
                                 const struct client_hello *ch)
{
    c->be_index = (uint8_t)be;
    c->flags |= CONN_ON_BACKEND;
    stat_inc(&st_backend(w, c)->conns);
    if (conn_build_header(w, c, ch) < 0) {
        conn_end(c, END_LOCAL_ERROR);
        return HS_CLOSE;
    }
    free(c->hdr_in); /* inbound TLVs, copied or not needed */
    c->hdr_in = NULL;
    c->hdr_in_len = 0;
    conn_finish_header(w, c);
    return HS_CONNECT;
}

/* ---- routing by the ClientHello's server name ----
 * The ClientHello is peeked, never read: it goes to the chosen backend as
 * the client sent it. While it is incomplete, SO_RCVLOWAT holds readiness
 * back until as much of the stream as it needs has arrived. */

static enum hs_next peek_start(struct worker *w, struct conn *c)
{
    c->state = CONN_PEEK;
    timer_set(w, c, TIMER_PEEK);
    return HS_POLL;
}

static void set_lowat(struct conn *c, int bytes)
{
    (void)setsockopt(c->fd[SIDE_CLIENT], SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes));
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
static enum hs_next peek_done(struct worker *w, struct conn *c, const struct client_hello *ch)
{
    const struct config_listener *l = conn_listener(w, c);
    int routed = ch ? route_table_pick(&conn_rt(w, c)->routes[c->li], ch->sni, ch->sni_len) : -1;

    if (c->flags & CONN_LOWAT) {
        set_lowat(c, 1);
        c->flags &= (uint8_t)~CONN_LOWAT;
    }
    if (routed >= 0)
        stat_inc(&st_listener(w, c)->routed);
    if (ch && w->alog)
        conn_keep_hello(c, ch);
    return conn_prepare(w, c, routed >= 0 ? routed : l->default_index, ch);
}

/* An untrusted client's first bytes look like a PROXY header: a forged
 * address, or a proxy missing from --trusted-source. */
static void untrusted_refuse(struct worker *w, struct conn *c)
{
    char addr[ADDR_STRLEN];

    stat_inc(&st_listener(w, c)->header_untrusted);
    conn_end(c, END_UNTRUSTED_HEADER);
    log_rl(LOG_LEVEL_WARN,
           "c%u.%u client %s sent a PROXY header but is not a "
           "--trusted-source: refused (a forged address, or a proxy missing from the list)",
           w->id, c->id, addr_format(&c->peer.sa, addr, sizeof(addr)));
}

int handshake_untrusted(struct worker *w, struct conn *c, const uint8_t *p, size_t len)
{
    c->flags &= (uint8_t)~CONN_UNTRUSTED;
    if (!sniff_is_proxy(sniff_first_bytes(p, len)))
        return 0;
    untrusted_refuse(w, c);
    return 1;
}

/* Whether the client has sent its FIN: a peek sees the bytes that came
 * before it, but the socket is then in CLOSE_WAIT. */
static int client_finished(const struct conn *c)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    return getsockopt(c->fd[SIDE_CLIENT], IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
           ti.tcpi_state == TCP_CLOSE_WAIT;
}

/* The client closed with part of its header or ClientHello sent: nothing
 * more can come, so it ends now rather than at the timeout. */
static enum hs_next handshake_closed(struct worker *w, struct conn *c, const char *what,
                                     size_t have)
{
    char addr[ADDR_STRLEN];

    conn_end(c, END_HANDSHAKE_CLOSED);
    log_rl(LOG_LEVEL_INFO, "c%u.%u client %s: closed after %zu bytes of its %s: closed", w->id,
           c->id, addr_format(&c->peer.sa, addr, sizeof(addr)), have, what);
    return HS_CLOSE;
}

static enum hs_next peek_read(struct worker *w, struct conn *c)
{
    uint8_t buf[CONFIG_PEEK_MAX], scratch[CONFIG_PEEK_MAX];
    struct client_hello ch;
    ssize_t n = recv(c->fd[SIDE_CLIENT], buf, sizeof(buf), MSG_PEEK);
    int ret;

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return HS_POLL_DRAINED;
    if (n <= 0) {
        log_debug("c%u.%u client closed before its ClientHello was complete", w->id, c->id);
        conn_end(c, n == 0 ? END_CLIENT_CLOSED : END_CLIENT_RESET);
        return HS_CLOSE;
    }
    if ((c->flags & CONN_UNTRUSTED) && handshake_untrusted(w, c, buf, (size_t)n))
        return HS_RESET;
    ret = clienthello_parse(buf, (size_t)n, scratch, sizeof(scratch), &ch);
    if (ret == -EAGAIN && client_finished(c))
        return handshake_closed(w, c, "ClientHello", (size_t)n);
    if (ret == -EAGAIN && ch.need <= sizeof(buf)) {
        c->flags |= CONN_LOWAT;
        set_lowat(c, (int)ch.need);
        return HS_POLL_DRAINED;
    }
    if (ret < 0) {
        log_debug("c%u.%u %s: default backend", w->id, c->id,
                  ret == -EPROTO ? "not a TLS ClientHello" : "ClientHello too large");
        return peek_done(w, c, NULL);
    }
    return peek_done(w, c, &ch);
}

/* Picks the backend: by server name if the listener has routes (or its
 * default backend wants TLVs from the ClientHello), else its default. */
static enum hs_next conn_route(struct worker *w, struct conn *c)
{
    const struct config_listener *l = conn_listener(w, c);
    uint32_t tlvs = conn_cfg(w, c)->backends[l->default_index].tlvs;

    if (l->n_routes || (tlvs & (TLV_AUTHORITY | TLV_ALPN)))
        return peek_start(w, c);
    return conn_prepare(w, c, l->default_index, NULL);
}

/* ---- who may connect: allow and deny lists, per-source limits ---- */

/* The first range of n in list that holds sa, or NULL. */
static const struct cidr *cidr_find(const struct cidr *list, int n, const struct sockaddr *sa)
{
    for (int i = 0; i < n; i++)
        if (cidr_match(&list[i], sa))
            return &list[i];
    return NULL;
}

/* The listener's deny list, then its allow list (when it has one): returns
 * 1 if c's client is refused (counted and logged; reset it), else 0. */
static int source_denied(struct worker *w, struct conn *c)
{
    const struct config_listener *l = conn_listener(w, c);
    const struct cidr *hit = cidr_find(l->deny, l->n_deny, &c->peer.sa);
    char addr[ADDR_STRLEN], range[CIDR_STRLEN];

    if (!hit && (!l->n_allow || cidr_find(l->allow, l->n_allow, &c->peer.sa)))
        return 0;
    conn_end(c, END_DENIED);
    addr_format(&c->peer.sa, addr, sizeof(addr));
    if (hit)
        log_rl(LOG_LEVEL_INFO, "c%u.%u client %s: denied by listener %s: deny %s", w->id, c->id,
               addr, l->name, cidr_format(hit, range, sizeof(range)));
    else
        log_rl(LOG_LEVEL_INFO, "c%u.%u client %s: denied by listener %s: not in its allow list",
               w->id, c->id, addr, l->name);
    return 1;
}

/* Counts a new connection from c's client (src_key) against the
 * listener's max_connection_rate_per_source: returns 1 if it is over (c
 * refused: counted and logged; reset it), else 0. */
static int source_over_rate(struct worker *w, struct conn *c)
{
    uint32_t limit = conn_listener(w, c)->rate_per_source;
    char addr[ADDR_STRLEN];

    if (srclimit_rate(c->src_key, limit, (uint32_t)(w->now_ms / 1000)) == 0)
        return 0;
    conn_end(c, END_RATE_LIMITED);
    log_rl(LOG_LEVEL_WARN,
           "c%u.%u client %s: more than %u new connections this second from this address "
           "(max_connection_rate_per_source): reset",
           w->id, c->id, addr_format(&c->peer.sa, addr, sizeof(addr)), limit);
    return 1;
}

/* Counts c against its client address's (src_key) share of the
 * listener's max_connections_per_source. Returns 1 if that is full (c
 * refused: counted and logged; reset it), else 0. */
static int source_over_open(struct worker *w, struct conn *c)
{
    uint32_t limit = conn_listener(w, c)->max_per_source;
    char addr[ADDR_STRLEN];

    if (srclimit_take(c->src_key, limit) == 0) {
        c->flags |= CONN_SRC_COUNTED;
        return 0;
    }
    stat_inc(&st_listener(w, c)->refused_source);
    conn_end(c, END_SOURCE_LIMIT);
    log_rl(LOG_LEVEL_WARN,
           "c%u.%u client %s: already %u connections open from this address "
           "(max_connections_per_source): refused",
           w->id, c->id, addr_format(&c->peer.sa, addr, sizeof(addr)), limit);
    return 1;
}

/* Who may connect, in order: the deny and allow lists, the rate of new
 * connections per source, then the open ones per source, each on the real
 * client's address. Returns 1 if c is refused (counted and logged; reset
 * it), else 0. */
static int source_refused(struct worker *w, struct conn *c)
{
    const struct config_listener *l = conn_listener(w, c);

    if ((l->n_deny || l->n_allow) && source_denied(w, c))
        return 1;
    if (!l->rate_per_source && !l->max_per_source)
        return 0;
    c->src_key = srclimit_key(&c->peer.sa);
    return (l->rate_per_source && source_over_rate(w, c)) ||
           (l->max_per_source && source_over_open(w, c));
}

/* ---- a trusted client's inbound PROXY header ----
 * It is peeked, never read past: once parsed, exactly its bytes are taken
 * from the socket and whatever follows is relayed as usual. Only a header
 * that arrives in pieces is copied out, its bytes so far all header. */

static enum hs_next header_start(struct worker *w, struct conn *c)
{
    c->state = CONN_HEADER;
    timer_set(w, c, TIMER_HEADER);
    return HS_POLL;
}

/* A trusted client sent something other than a header: say what, and the
 * likely fix, once per kind of mistake. */
static enum hs_next header_refuse(struct worker *w, struct conn *c, const uint8_t *p, size_t len,
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
        log_rl(LOG_LEVEL_WARN,
               "c%u.%u client %s: expected a PROXY header, got a TLS "
               "ClientHello: %s",
               w->id, c->id, addr, fix);
        break;
    case SNIFF_HTTP:
        log_rl(LOG_LEVEL_WARN,
               "c%u.%u client %s: expected a PROXY header, got an HTTP "
               "request: %s",
               w->id, c->id, addr, fix);
        break;
    default:
        log_rl(LOG_LEVEL_WARN, "c%u.%u client %s: bad PROXY header: %s", w->id, c->id, addr, why);
        break;
    }
    return HS_CLOSE;
}

/* The header took p[0..drop) of what the socket still holds: take those
 * bytes and go on with the addresses it carries. */
static enum hs_next header_done(struct worker *w, struct conn *c, const struct proxy_header *h,
                                uint8_t *scratch, size_t drop)
{
    if (drop && recv(c->fd[SIDE_CLIENT], scratch, drop, 0) != (ssize_t)drop) {
        conn_end(c, END_CLIENT_RESET);
        return HS_RESET;
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
        if (source_refused(w, c))
            return HS_RESET;
    } /* else LOCAL or UNKNOWN: the trusted proxy's own connection (its checks) */
    /* Keep the TLVs a backend may copy until one is chosen. */
    if (conn_rt(w, c)->any_tlv_pass && h->tlv_len && (c->hdr_in = malloc(h->tlv_len))) {
        memcpy(c->hdr_in, h->tlv, h->tlv_len);
        c->hdr_in_len = (uint16_t)h->tlv_len;
    }
    return conn_route(w, c);
}

/* The most a header may take on c's listener. */
static size_t header_cap(const struct config_listener *l)
{
    if (l->proxy_protocol_in == PROXY_IN_V1 || l->header_max_size < PROXY_V1_MAX)
        return PROXY_V1_MAX;
    return l->header_max_size;
}

/* All that arrived of the header is header so far: take it off the socket
 * into hdr_in and wait for the rest. */
static enum hs_next header_keep(struct conn *c, size_t cap, size_t have, size_t n)
{
    if (!c->hdr_in && !(c->hdr_in = malloc(cap))) {
        conn_end(c, END_LOCAL_ERROR);
        return HS_RESET;
    }
    if (recv(c->fd[SIDE_CLIENT], c->hdr_in + have, n, 0) != (ssize_t)n) {
        conn_end(c, END_CLIENT_RESET);
        return HS_RESET;
    }
    c->hdr_in_len = (uint16_t)(have + n);
    return HS_POLL_DRAINED;
}

static enum hs_next header_read(struct worker *w, struct conn *c)
{
    uint8_t buf[CONFIG_HEADER_MAX_LIMIT];
    const struct config_listener *l = conn_listener(w, c);
    size_t have = c->hdr_in_len, cap = header_cap(l);
    struct proxy_header h;
    ssize_t n = recv(c->fd[SIDE_CLIENT], buf + have, cap - have, MSG_PEEK);
    int ret;

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return HS_POLL_DRAINED;
    if (n == 0 && have)
        return handshake_closed(w, c, "PROXY header", have);
    if (n <= 0) {
        log_debug("c%u.%u client closed before its PROXY header was complete (%zu bytes)", w->id,
                  c->id, have);
        conn_end(c, n == 0 ? END_CLIENT_CLOSED : END_CLIENT_RESET);
        return HS_CLOSE;
    }
    if (have)
        memcpy(buf, c->hdr_in, have);
    ret = proxy_parse(buf, have + (size_t)n, l->proxy_protocol_in, l->header_max_size, &h);
    if (ret > 0)
        return header_done(w, c, &h, buf + have, (size_t)ret - have);
    if (ret != -EAGAIN)
        return header_refuse(w, c, buf, have + (size_t)n, h.why);
    if (client_finished(c))
        return handshake_closed(w, c, "PROXY header", have + (size_t)n);
    return header_keep(c, cap, have, (size_t)n);
}

/* ---- entry points ---- */

static int peer_trusted(const struct config_listener *l, const struct sockaddr *sa)
{
    for (int i = 0; i < l->n_trusted; i++)
        if (cidr_match(&l->trusted[i], sa))
            return 1;
    return 0;
}

enum hs_next handshake_begin(struct worker *w, struct conn *c)
{
    const struct config_listener *l = conn_listener(w, c);

    if (l->proxy_protocol_in != PROXY_IN_OFF && peer_trusted(l, &c->peer.sa)) {
        /* A trusted proxy speaks for many clients: each is counted by the
         * address its header gives. */
        w->io->attach(w, c, SIDE_CLIENT);
        return header_start(w, c);
    }
    if (source_refused(w, c))
        return HS_RESET;
    w->io->attach(w, c, SIDE_CLIENT);
    if (l->proxy_protocol_in != PROXY_IN_OFF)
        c->flags |= CONN_UNTRUSTED;
    return conn_route(w, c);
}

enum hs_next handshake_read(struct worker *w, struct conn *c)
{
    return c->state == CONN_HEADER ? header_read(w, c) : peek_read(w, c);
}

void handshake_timed_out(struct worker *w, struct conn *c)
{
    char addr[ADDR_STRLEN];

    if (c->timer_kind == TIMER_HEADER) {
        stat_inc(&st_listener(w, c)->header_timeouts);
        conn_end(c, END_HEADER_TIMEOUT);
        log_rl(LOG_LEVEL_WARN,
               "c%u.%u client %s: no PROXY header within %u ms "
               "(--header-timeout): closed",
               w->id, c->id, addr_format(&c->peer.sa, addr, sizeof(addr)),
               conn_timeout_ms(w, c, TIMER_HEADER));
        return;
    }
    stat_inc(&st_listener(w, c)->peek_timeouts);
    conn_end(c, END_PEEK_TIMEOUT);
    log_rl(LOG_LEVEL_WARN,
           "c%u.%u client %s: no whole TLS ClientHello within %u ms "
           "(--peek-timeout): closed",
           w->id, c->id, addr_format(&c->peer.sa, addr, sizeof(addr)),
           conn_timeout_ms(w, c, TIMER_PEEK));
}
