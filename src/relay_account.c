/* Accounting and diagnosis for the relay: counters and access-log lines
 * as connections end, "show conns", and the diagnosis of a backend that
 * does not expect the PROXY header. */
#include "relay_account.h"

#include "log.h"
#include "sniff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A backend that ends the connection this soon after the PROXY header,
 * before sending a byte, most likely refused the header. */
#define NO_PROXY_WINDOW_MS 2000

/* ---- access log ---- */

/* What every access-log line starts from, a relayed connection's or a
 * refused one's. */
struct access_head {
    uint64_t start_us;
    uint32_t conn_id;
    uint8_t end;       /* enum conn_end */
    uint16_t listener; /* stats slot */
    const union sockaddr_inet *client;
};

struct conn_extra *conn_extra(struct conn *c)
{
    if (!c->extra)
        c->extra = calloc(1, sizeof(*c->extra));
    return c->extra;
}

/* Whether the access log wants a line for a connection that ended so. */
static int access_wanted(const struct worker *w, const struct config *cfg, uint8_t end)
{
    enum access_log_mode mode = cfg->access_log.mode;

    if (!w->alog || mode == ACCESS_LOG_OFF)
        return 0;
    return mode == ACCESS_LOG_ALL || (end < END_KINDS && !stats_end[end].normal);
}

/* A slot in the access log ring with h and nothing else filled in, or
 * NULL when the ring is full (the line is dropped, and counted). */
static struct access_record *access_open(struct worker *w, const struct access_head *h)
{
    struct access_record *r = access_ring_slot(w->alog);

    if (!r) {
        stat_inc(&w->st->w.log_dropped);
        return NULL;
    }
    r->start_us = h->start_us;
    r->end_us = mono_us();
    r->conn_id = h->conn_id;
    r->worker = (uint16_t)w->id;
    r->end = h->end;
    r->flags = 0;
    r->listener = h->listener;
    r->t_open = r->t_first = 0;
    r->bytes[0] = r->bytes[1] = 0;
    r->client = *h->client;
    r->sni[0] = r->alpn[0] = '\0';
    return r;
}

/* Hands c's line to the access log writer. */
static void access_record(struct worker *w, struct conn *c)
{
    const struct access_head h = {c->start_us, c->id, c->end, conn_rt(w, c)->st_listener[c->li],
                                  &c->peer};
    struct access_record *r;

    if (!access_wanted(w, conn_cfg(w, c), c->end) || !(r = access_open(w, &h)))
        return;
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

/* ---- counters ---- */

void account_refused(struct worker *w, int fd, int bind, enum conn_end end)
{
    const struct runtime *rt = w->gens[w->cur_gen].rt;
    uint16_t slot = rt->st_listener[w->listen_li[bind]];
    struct stats_listener *sl = &w->st->l[slot];
    union sockaddr_inet peer;
    socklen_t len = sizeof(peer);
    uint32_t id = ++w->pool.next_id; /* every accepted socket has an id of its own */

    if (access_wanted(w, &rt->cfg, end)) {
        struct access_head h = {mono_us(), id, end, slot, &peer};
        memset(&peer, 0, sizeof(peer));
        (void)getpeername(fd, &peer.sa, &len);
        if (access_open(w, &h))
            access_ring_commit(w->alog);
    }
    if (end == END_REFUSED_LIMIT)
        stat_inc(&sl->refused);
    stat_inc(&sl->ends[end]);
}

void account_conn_end(struct worker *w, struct conn *c)
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

void account_connect_failed(struct worker *w, struct conn *c, int res)
{
    stat_inc(&st_server(w, c)->fails[connect_cause(res)]);
}

const char *conn_server_name(const struct worker *w, const struct conn *c, char *buf, size_t cap)
{
    if (c->server < 0) {
        snprintf(buf, cap, "%s", conn_backend(w, c)->name);
        return buf;
    }
    return addr_format(runtime_server_addr(conn_rt(w, c), c->be_index, c->server), buf, cap);
}

/* ---- diagnosis: a backend that does not expect PROXY protocol ---- */

/* The backend took the PROXY header and then said nothing but goodbye
 * (what), or answered a ClientHello in something other than TLS: the
 * classic listener without proxy_protocol. Says so once per connection. */
static void backend_no_proxy(struct worker *w, struct conn *c, const char *what)
{
    char baddr[ADDR_STRLEN];

    stat_inc(&st_server(w, c)->no_proxy);
    log_rl(LOG_LEVEL_WARN,
           "c%u.%u backend %s %s: it probably does not expect PROXY protocol on "
           "that port (nginx/Kong: add proxy_protocol to its listen line), or run the relay "
           "with --proxy-protocol off",
           w->id, c->id, conn_server_name(w, c, baddr, sizeof(baddr)), what);
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

void account_first_event(struct worker *w, struct conn *c, int d, int res, const uint8_t *p)
{
    if (d == SIDE_CLIENT) {
        if (res > 0 && sniff_first_bytes(p, (size_t)res) == SNIFF_TLS)
            c->flags |= CONN_CLIENT_TLS;
        return;
    }
    if (res <= 0) {
        backend_gone_early(w, c, res);
        return;
    }
    if (c->state == CONN_OPEN && !c->t_first) {
        c->t_first = conn_elapsed(c);
        stats_hist_add(&st_backend(w, c)->first_byte, c->t_first - c->t_open);
    }
    backend_first_bytes(w, c, p, (size_t)res);
}

/* ---- show conns ---- */

static const char *const state_name[] = {
    [CONN_FREE] = "free",          [CONN_HEADER] = "header", [CONN_PEEK] = "peek",
    [CONN_CONNECTING] = "connect", [CONN_OPEN] = "open",     [CONN_CLOSING] = "closing",
};

static void dump_conn(struct worker *w, const struct conn *c, FILE *out, uint64_t now)
{
    char addr[ADDR_STRLEN], srv[ADDR_STRLEN];

    fprintf(out,
            "%d.%u %s client=%s listener=%s backend=%s server=%s age_ms=%llu "
            "from_client=%llu from_server=%llu\n",
            w->id, c->id, state_name[c->state], addr_format(&c->peer.sa, addr, sizeof(addr)),
            conn_cfg(w, c)->listeners[c->li].name,
            c->flags & CONN_ON_BACKEND ? conn_backend(w, c)->name : "-",
            c->server >= 0 ? conn_server_name(w, c, srv, sizeof(srv)) : "-",
            (unsigned long long)((now - c->start_us) / 1000), (unsigned long long)c->dir[0].moved,
            (unsigned long long)c->dir[1].moved);
}

void relay_dump_conns(struct worker *w, FILE *out, uint32_t max)
{
    uint64_t now = mono_us();
    uint32_t n = 0;

    for (uint32_t i = 0; i < w->pool.n_used; i++) {
        const struct conn *c = &w->pool.conns[i];
        if (c->state == CONN_FREE)
            continue;
        if (n++ == max) {
            fprintf(out, "worker %d: more connections not shown\n", w->id);
            return;
        }
        dump_conn(w, c, out, now);
    }
}
