/* DNS names of servers, resolved with c-ares: A and AAAA at once
 * (ares_getaddrinfo), sockets polled with poll(2) (never select: the
 * process's descriptors run past FD_SETSIZE), one channel per backend that
 * has names, with that backend's resolvers. */
#include "resolver.h"

#include "log.h"
#include "mono.h"

#include <ares.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUERY_TIMEOUT_MS 1000 /* per try; c-ares doubles it on each round */
#define QUERY_TRIES 2
#define SYNC_WAIT_MS 5000 /* the longest start or reload waits for new names */
#define TICK_MS 100

struct name {
    char backend[CONFIG_NAME_MAX];
    char host[CONFIG_HOST_MAX];
    int chan;
    uint32_t interval_ms;
    uint64_t due_ms;
    int pending; /* a query is out */
    int live;    /* in the configuration synced last */
    enum resolver_state state;
    union sockaddr_inet addr[RESOLVER_MAX_ADDRS]; /* sorted, port 0 */
    int n;
    int all; /* distinct addresses in the last answer, n of them kept */
    uint64_t resolutions, failures, changes;
    char error[64];
};

struct query {
    struct resolver *rs;
    int i;
};

struct resolver {
    pthread_mutex_t lock; /* the names: the thread writes, expand and report read */
    struct name names[RESOLVER_MAX_NAMES];
    struct query q[RESOLVER_MAX_NAMES];
    int n_names;
    ares_channel chans[CONFIG_MAX_BACKENDS];
    int n_chans;
    pthread_t thread;
    int running;
    atomic_int stop, changed;
};

struct resolver *resolver_new(void)
{
    struct resolver *rs = calloc(1, sizeof(*rs));

    if (!rs || ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        free(rs);
        return NULL;
    }
    pthread_mutex_init(&rs->lock, NULL);
    for (int i = 0; i < RESOLVER_MAX_NAMES; i++)
        rs->q[i] = (struct query){rs, i};
    return rs;
}

static void chans_close(struct resolver *rs)
{
    for (int c = 0; c < rs->n_chans; c++)
        ares_destroy(rs->chans[c]); /* an answer still out is dropped */
    rs->n_chans = 0;
    for (int i = 0; i < rs->n_names; i++)
        rs->names[i].pending = 0;
}

void resolver_free(struct resolver *rs)
{
    if (!rs)
        return;
    resolver_stop(rs);
    chans_close(rs);
    pthread_mutex_destroy(&rs->lock);
    free(rs);
    ares_library_cleanup();
}

/* A channel asking servers (n of them; none: /etc/resolv.conf's). */
static int chan_open(ares_channel *ch, const union sockaddr_inet *servers, int n)
{
    static char bind_only[] = "b"; /* named servers: DNS only, not /etc/hosts */
    struct ares_options o = {.timeout = QUERY_TIMEOUT_MS, .tries = QUERY_TRIES};
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    char csv[CONFIG_MAX_RESOLVERS * (ADDR_STRLEN + 1)] = "", addr[ADDR_STRLEN];
    size_t len = 0;

    if (n) {
        o.lookups = bind_only;
        mask |= ARES_OPT_LOOKUPS;
    }
    if (ares_init_options(ch, &o, mask) != ARES_SUCCESS)
        return -1;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(csv + len, sizeof(csv) - len, "%s%s", i ? "," : "",
                                addr_format(&servers[i].sa, addr, sizeof(addr)));
    if (n && ares_set_servers_ports_csv(*ch, csv) != ARES_SUCCESS) {
        ares_destroy(*ch);
        return -1;
    }
    return 0;
}

static int addr_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(union sockaddr_inet));
}

/* The addresses of an answer, without ports, sorted and each once: the
 * lowest RESOLVER_MAX_ADDRS into out, so that the same set in another
 * order is the same servers. Returns how many went into out; *all is how
 * many distinct addresses the answer had. */
static int answer_addrs(const struct ares_addrinfo *res, union sockaddr_inet *out, int *all)
{
    union sockaddr_inet *v;
    int n = 0, kept = 0;

    *all = 0;
    for (const struct ares_addrinfo_node *a = res ? res->nodes : NULL; a; a = a->ai_next)
        n++;
    if (!n || !(v = calloc((size_t)n, sizeof(*v))))
        return 0;
    n = 0;
    for (const struct ares_addrinfo_node *a = res->nodes; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            v[n].in.sin_family = AF_INET;
            v[n++].in.sin_addr = ((const struct sockaddr_in *)(const void *)a->ai_addr)->sin_addr;
        } else if (a->ai_family == AF_INET6) {
            v[n].in6.sin6_family = AF_INET6;
            v[n++].in6.sin6_addr =
                ((const struct sockaddr_in6 *)(const void *)a->ai_addr)->sin6_addr;
        }
    }
    qsort(v, (size_t)n, sizeof(*v), addr_cmp);
    for (int i = 0; i < n; i++)
        if (!kept || addr_cmp(&v[i], &v[kept - 1]) != 0)
            v[kept++] = v[i];
    *all = kept;
    kept = kept < RESOLVER_MAX_ADDRS ? kept : RESOLVER_MAX_ADDRS;
    memcpy(out, v, (size_t)kept * sizeof(*v));
    free(v);
    return kept;
}

/* A query failed (why): the name keeps what it had; said once per change
 * of state. Under the lock. */
static void failed(struct name *nm, const char *why)
{
    nm->failures++;
    if (nm->state == RESOLVER_OK) {
        nm->state = RESOLVER_FAILING;
        log_warn("dns: backend %s: %s does not resolve (%s): keeping its %d address%s", nm->backend,
                 nm->host, why, nm->n, nm->n == 1 ? "" : "es");
    } else if (nm->state == RESOLVER_NEVER && !nm->error[0]) {
        log_warn("dns: backend %s: %s does not resolve (%s): its server stays down until it "
                 "does",
                 nm->backend, nm->host, why);
    }
    snprintf(nm->error, sizeof(nm->error), "%s", why);
}

/* What changed between the addresses a name had and those it has now, for
 * the log: "+192.0.2.7 -192.0.2.5". */
static void diff_text(const struct name *nm, const union sockaddr_inet *now, int n, char *buf,
                      size_t cap)
{
    char a[ADDR_STRLEN];
    size_t len = 0;

    buf[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        const union sockaddr_inet *from = pass ? nm->addr : now, *in = pass ? now : nm->addr;
        int nf = pass ? nm->n : n, ni = pass ? n : nm->n;
        for (int i = 0; i < nf && len + 1 < cap; i++) {
            if (bsearch(&from[i], in, (size_t)ni, sizeof(*in), addr_cmp))
                continue;
            addr_format(&from[i].sa, a, sizeof(a));
            a[strlen(a) - 2] = '\0'; /* ":0", the port it has none of */
            len += (size_t)snprintf(buf + len, cap - len, " %c%s", pass ? '-' : '+', a);
        }
    }
}

static void answered(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct query *q = arg;
    struct resolver *rs = q->rs;
    struct name *nm = &rs->names[q->i];
    union sockaddr_inet now[RESOLVER_MAX_ADDRS];
    int all = 0, n = status == ARES_SUCCESS ? answer_addrs(res, now, &all) : 0;
    char diff[256];

    (void)timeouts;
    ares_freeaddrinfo(res);
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
        return;
    pthread_mutex_lock(&rs->lock);
    nm->pending = 0;
    nm->resolutions++;
    if (all != nm->all && all > RESOLVER_MAX_ADDRS)
        log_warn("dns: backend %s: %s has %d addresses: keeping the lowest %d (sorted, so the "
                 "same set whatever the order of the answer)",
                 nm->backend, nm->host, all, RESOLVER_MAX_ADDRS);
    if (n)
        nm->all = all;
    if (!n) {
        failed(nm, status == ARES_SUCCESS ? "no address in the answer" : ares_strerror(status));
    } else if (nm->state != RESOLVER_NEVER && n == nm->n &&
               memcmp(now, nm->addr, (size_t)n * sizeof(*now)) == 0) {
        if (nm->state == RESOLVER_FAILING)
            log_info("dns: backend %s: %s resolves again: %d address%s, as before", nm->backend,
                     nm->host, n, n == 1 ? "" : "es");
        nm->state = RESOLVER_OK;
    } else {
        diff_text(nm, now, n, diff, sizeof(diff));
        log_info("dns: backend %s: %s: %d address%s (was %d):%s", nm->backend, nm->host, n,
                 n == 1 ? "" : "es", nm->n, diff);
        if (nm->resolutions > 1)
            nm->changes++;
        memcpy(nm->addr, now, (size_t)n * sizeof(*now));
        nm->n = n;
        nm->state = RESOLVER_OK;
        atomic_store(&rs->changed, 1);
    }
    if (nm->state == RESOLVER_OK)
        nm->error[0] = '\0';
    pthread_mutex_unlock(&rs->lock);
}

static void query(struct resolver *rs, int i)
{
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC};
    struct name *nm = &rs->names[i];

    nm->pending = 1;
    ares_getaddrinfo(rs->chans[nm->chan], nm->host, NULL, &hints, answered, &rs->q[i]);
}

/* Waits up to wait_ms for the channels' sockets, and lets c-ares read what
 * came and time out what is late. Returns how many queries are still out. */
static int pump(struct resolver *rs, int wait_ms)
{
    struct pollfd p[CONFIG_MAX_BACKENDS * ARES_GETSOCK_MAXNUM];
    int chan_of[CONFIG_MAX_BACKENDS * ARES_GETSOCK_MAXNUM], n = 0, out = 0;

    for (int c = 0; c < rs->n_chans; c++) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        int bits = ares_getsock(rs->chans[c], socks, ARES_GETSOCK_MAXNUM);
        struct timeval max = {.tv_sec = 0, .tv_usec = wait_ms * 1000}, tv, *t;
        for (int k = 0; k < ARES_GETSOCK_MAXNUM; k++) {
            /* ares_getsock()'s bits, as its macros read them but unsigned:
             * theirs shift an int by up to 31. */
            unsigned readable = (unsigned)bits & 1U << k;
            unsigned writable = (unsigned)bits & 1U << (k + ARES_GETSOCK_MAXNUM);
            short ev = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
            if (!ev)
                continue;
            p[n] = (struct pollfd){.fd = socks[k], .events = ev};
            chan_of[n++] = c;
        }
        t = ares_timeout(rs->chans[c], &max, &tv);
        if (t && t->tv_sec * 1000 + t->tv_usec / 1000 < wait_ms)
            wait_ms = (int)(t->tv_sec * 1000 + t->tv_usec / 1000);
    }
    if (poll(p, (nfds_t)n, wait_ms) == -1 && errno != EINTR)
        return 0;
    for (int k = 0; k < n; k++)
        if (p[k].revents)
            ares_process_fd(rs->chans[chan_of[k]],
                            p[k].revents & (POLLIN | POLLERR | POLLHUP) ? p[k].fd : ARES_SOCKET_BAD,
                            p[k].revents & POLLOUT ? p[k].fd : ARES_SOCKET_BAD);
    for (int c = 0; c < rs->n_chans; c++) /* timeouts */
        ares_process_fd(rs->chans[c], ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    for (int i = 0; i < rs->n_names; i++)
        out += rs->names[i].pending;
    return out;
}

static int name_find(const struct resolver *rs, const char *backend, const char *host)
{
    for (int i = 0; i < rs->n_names; i++)
        if (strcmp(rs->names[i].backend, backend) == 0 && strcmp(rs->names[i].host, host) == 0)
            return i;
    return -1;
}

/* A slot for a new name: one the configuration no longer has (none of
 * its queries out), or a new one; -1 when all are taken. */
static int name_slot(struct resolver *rs)
{
    for (int i = 0; i < rs->n_names; i++)
        if (!rs->names[i].live && !rs->names[i].pending)
            return i;
    return rs->n_names < RESOLVER_MAX_NAMES ? rs->n_names++ : -1;
}

/* Backend b's channel and its names, each marked live. */
static int sync_backend(struct resolver *rs, const struct config *c, int b, char *err,
                        size_t errlen)
{
    const struct config_backend *be = &c->backends[b];
    int chan = -1;

    for (int s = 0; s < be->n_servers; s++) {
        const char *host = be->servers[s].host;
        int i;
        if (!host[0])
            continue;
        if (chan < 0) {
            if (chan_open(&rs->chans[rs->n_chans], be->n_resolvers ? be->resolvers : c->resolvers,
                          be->n_resolvers ? be->n_resolvers : c->n_resolvers) < 0) {
                snprintf(err, errlen, "backend %s: cannot set up DNS resolution", be->name);
                return -1;
            }
            chan = rs->n_chans++;
        }
        i = name_find(rs, be->name, host);
        if (i < 0) {
            i = name_slot(rs);
            if (i < 0) {
                snprintf(err, errlen, "more than %d DNS names in servers", RESOLVER_MAX_NAMES);
                return -1;
            }
            memset(&rs->names[i], 0, sizeof(rs->names[i]));
            snprintf(rs->names[i].backend, sizeof(rs->names[i].backend), "%s", be->name);
            snprintf(rs->names[i].host, sizeof(rs->names[i].host), "%s", host);
        }
        rs->names[i].live = 1;
        rs->names[i].chan = chan;
        rs->names[i].interval_ms =
            be->resolve_interval_ms ? be->resolve_interval_ms : c->resolve_interval_ms;
    }
    return 0;
}

int resolver_sync(struct resolver *rs, const struct config *c, char *err, size_t errlen)
{
    uint64_t start = mono_ms();
    int asked = 0;

    chans_close(rs);
    pthread_mutex_lock(&rs->lock);
    for (int i = 0; i < rs->n_names; i++)
        rs->names[i].live = 0;
    for (int b = 0; b < c->n_backends; b++) {
        if (sync_backend(rs, c, b, err, errlen) < 0) {
            pthread_mutex_unlock(&rs->lock);
            chans_close(rs);
            return -1;
        }
    }
    pthread_mutex_unlock(&rs->lock);
    for (int i = 0; i < rs->n_names; i++) {
        if (rs->names[i].live && !rs->names[i].resolutions) {
            query(rs, i);
            asked++;
        }
    }
    while (asked && pump(rs, TICK_MS) && mono_ms() - start < SYNC_WAIT_MS)
        ;
    for (int i = 0; i < rs->n_names; i++)
        if (rs->names[i].live && !rs->names[i].due_ms)
            rs->names[i].due_ms = mono_ms() + rs->names[i].interval_ms;
    if (asked)
        log_info("dns: %d name%s resolved in %llu ms", asked, asked == 1 ? "" : "s",
                 (unsigned long long)(mono_ms() - start));
    atomic_store(&rs->changed, 0); /* what the configuration is made from now */
    return 0;
}

/* The addresses of backend be's server sv now: how many, into out (the
 * server's port set). Under the lock. */
static int server_addrs(const struct resolver *rs, const struct config_backend *be,
                        const struct config_server *sv, union sockaddr_inet *out)
{
    int i = name_find(rs, be->name, sv->host), n = i < 0 ? 0 : rs->names[i].n;

    for (int k = 0; k < n; k++) {
        out[k] = rs->names[i].addr[k];
        if (out[k].sa.sa_family == AF_INET)
            out[k].in.sin_port = sv->inet.in.sin_port;
        else
            out[k].in6.sin6_port = sv->inet.in.sin_port;
    }
    return n;
}

static int expand_backend(const struct resolver *rs, struct config_backend *be, int *total,
                          char *err, size_t errlen)
{
    union sockaddr_inet addrs[RESOLVER_MAX_ADDRS];
    struct config_server *out;
    int n = 0, k = 0, any = 0;

    for (int s = 0; s < be->n_servers; s++) {
        int a = be->servers[s].host[0] ? server_addrs(rs, be, &be->servers[s], addrs) : 1;
        any |= be->servers[s].host[0] != 0;
        n += a ? a : 1;
    }
    if (!any) {
        *total += be->n_servers;
        return 0;
    }
    if (*total + n > CONFIG_MAX_SERVERS_TOTAL) {
        snprintf(err, errlen, "backend %s: its names give %d servers; at most %d in all", be->name,
                 n, CONFIG_MAX_SERVERS_TOTAL - *total);
        return -1;
    }
    if (!(out = calloc((size_t)n, sizeof(*out)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int s = 0; s < be->n_servers; s++) {
        const struct config_server *sv = &be->servers[s];
        int a = sv->host[0] ? server_addrs(rs, be, sv, addrs) : 0;
        out[k++] = *sv; /* an address, or a name with none: no family, down */
        for (int j = 0; j < a; j++) {
            if (j)
                out[k++] = *sv;
            out[k - 1].inet = addrs[j];
        }
    }
    free(be->servers);
    be->servers = out;
    be->n_servers = n;
    *total += n;
    return 0;
}

int resolver_expand(struct resolver *rs, struct config *c, char *err, size_t errlen)
{
    int total = 0, ret = 0;

    pthread_mutex_lock(&rs->lock);
    for (int b = 0; b < c->n_backends && ret == 0; b++)
        ret = expand_backend(rs, &c->backends[b], &total, err, errlen);
    pthread_mutex_unlock(&rs->lock);
    return ret;
}

static void *resolver_main(void *arg)
{
    struct resolver *rs = arg;

    pthread_setname_np(pthread_self(), "rr-dns");
    while (!atomic_load(&rs->stop)) {
        uint64_t now = mono_ms();
        for (int i = 0; i < rs->n_names; i++) {
            struct name *nm = &rs->names[i];
            if (nm->live && !nm->pending && now >= nm->due_ms) {
                nm->due_ms = now + nm->interval_ms;
                query(rs, i);
            }
        }
        pump(rs, TICK_MS);
    }
    return NULL;
}

int resolver_start(struct resolver *rs)
{
    if (rs->running || !rs->n_chans)
        return 0;
    atomic_store(&rs->stop, 0);
    if (pthread_create(&rs->thread, NULL, resolver_main, rs) != 0)
        return -1;
    rs->running = 1;
    return 0;
}

void resolver_stop(struct resolver *rs)
{
    if (!rs || !rs->running)
        return;
    atomic_store(&rs->stop, 1);
    pthread_join(rs->thread, NULL);
    rs->running = 0;
}

int resolver_changed(struct resolver *rs)
{
    return rs && atomic_exchange(&rs->changed, 0);
}

int resolver_report(struct resolver *rs, struct resolver_stat *out, int max)
{
    int n = 0;

    if (!rs)
        return 0;
    pthread_mutex_lock(&rs->lock);
    for (int i = 0; i < rs->n_names && n < max; i++) {
        const struct name *nm = &rs->names[i];
        if (!nm->live)
            continue;
        out[n] = (struct resolver_stat){.state = nm->state,
                                        .addresses = nm->n,
                                        .resolutions = nm->resolutions,
                                        .failures = nm->failures,
                                        .changes = nm->changes};
        snprintf(out[n].backend, sizeof(out[n].backend), "%s", nm->backend);
        snprintf(out[n].host, sizeof(out[n].host), "%s", nm->host);
        snprintf(out[n].error, sizeof(out[n].error), "%s", nm->error);
        n++;
    }
    pthread_mutex_unlock(&rs->lock);
    return n;
}
