/* Listening sockets: probed, opened per worker (SO_REUSEPORT) at start, and
 * at a reload kept, opened or closed per bind address; at a hot upgrade,
 * handed down to the successor. */
#include "listeners.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Opens one SO_REUSEPORT listener. Returns the fd or -errno. Open across
 * exec (no SOCK_CLOEXEC): an upgrade's successor, the only program this
 * process starts, inherits it (listeners_inherit). */
static int listen_open(const union sockaddr_inet *a, uint32_t backlog)
{
    static const int one = 1;
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int err;

    if (fd == -1)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        /* Accepted sockets inherit it: no setsockopt per connection. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ||
        bind(fd, &a->sa, addr_len(&a->sa)) == -1 || listen(fd, (int)backlog) == -1) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* SO_REUSEPORT would let this process share a port another one (say a
 * second ringrelay) already listens on, each silently getting part of the
 * traffic. A plain bind first tells. Returns 0 or -errno. */
static int listen_probe(const union sockaddr_inet *a)
{
    static const int one = 1;
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = 0;

    if (fd == -1)
        return -errno;
    /* SO_REUSEADDR: connections in TIME_WAIT on the port are no conflict. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, &a->sa, addr_len(&a->sa)) == -1)
        err = -errno;
    close(fd);
    return err;
}

/* How a bind address is named in errors: as the flag, or the listener. */
static void bind_name(const struct config *c, int l, int b, char *buf, size_t cap)
{
    char addr[ADDR_STRLEN];

    addr_format(&c->listeners[l].bind[b].sa, addr, sizeof(addr));
    if (strcmp(c->listeners[l].name, "cli") == 0)
        snprintf(buf, cap, "--listen %s", addr);
    else
        snprintf(buf, cap, "listener %s: bind %s", c->listeners[l].name, addr);
}

/* Opens every bind of every listener for every worker before any thread
 * starts, so a bad address fails the start instead of leaving it
 * half-configured. fds[w][i] belongs to listener li[i]. */
static int open_listeners(struct process *r, int fds[][RUNTIME_MAX_BINDS], uint8_t *li, int *n)
{
    const struct config *c = &r->rt->cfg;
    char name[ADDR_STRLEN + CONFIG_NAME_MAX + 32];
    int err;

    *n = 0;
    for (int l = 0; l < c->n_listeners; l++) {
        for (int b = 0; b < c->listeners[l].n_bind; b++) {
            li[*n] = (uint8_t)l;
            (*n)++;
            if (!r->predecessor && (err = listen_probe(&c->listeners[l].bind[b])) < 0) {
                bind_name(c, l, b, name, sizeof(name));
                log_error("%s: %s%s", name, strerror(-err),
                          err == -EADDRINUSE ? " (is another ringrelay or server running there?)"
                                             : "");
                return err;
            }
        }
    }
    for (int w = 0; w < r->n_workers; w++) {
        int i = 0;
        for (int l = 0; l < c->n_listeners; l++) {
            for (int b = 0; b < c->listeners[l].n_bind; b++, i++) {
                int fd = listeners_take(r, &c->listeners[l].bind[b]);
                if (fd >= 0) /* inherited: with the backlog configured now */
                    (void)listen(fd, (int)c->accept_backlog);
                else
                    fd = listen_open(&c->listeners[l].bind[b], c->accept_backlog);
                if (fd < 0) {
                    bind_name(c, l, b, name, sizeof(name));
                    log_error("%s: %s", name, strerror(-fd));
                    return fd;
                }
                fds[w][i] = fd;
            }
        }
    }
    return 0;
}

int listeners_start(struct process *r, const struct io_backend *io, sem_t *started, const int *cpus,
                    int n_cpus)
{
    int(*fds)[RUNTIME_MAX_BINDS] = calloc((size_t)r->n_workers, sizeof(*fds));
    uint8_t li[RUNTIME_MAX_BINDS];
    int err, n = 0;

    r->workers = calloc((size_t)r->n_workers, sizeof(*r->workers));
    if (!fds || !r->workers) {
        free(fds);
        return -ENOMEM;
    }
    for (int w = 0; w < r->n_workers; w++)
        for (int i = 0; i < RUNTIME_MAX_BINDS; i++)
            fds[w][i] = -1;
    err = open_listeners(r, fds, li, &n);
    for (int w = 0; w < r->n_workers && err == 0; w++) {
        err = worker_init(&r->workers[w], w, r->rt, fds[w], li, n, &r->active_total);
        r->workers[w].alog = access_log_ring(r->alog, w);
    }
    if (err == 0) {
        for (int w = 0; w < r->n_workers && err == 0; w++)
            err = worker_start(&r->workers[w], io, n_cpus ? cpus[w % n_cpus] : -1, started);
    } else {
        for (int w = 0; w < r->n_workers; w++)
            for (int i = 0; i < RUNTIME_MAX_BINDS; i++)
                if (fds[w][i] >= 0)
                    close(fds[w][i]);
    }
    free(fds);
    return err;
}

/* Finds address a among rt's binds; returns its index over all listeners. */
static int bind_index(const struct config *c, const union sockaddr_inet *a)
{
    int i = 0;

    for (int l = 0; l < c->n_listeners; l++)
        for (int b = 0; b < c->listeners[l].n_bind; b++, i++)
            if (addr_len(&a->sa) == addr_len(&c->listeners[l].bind[b].sa) &&
                memcmp(a, &c->listeners[l].bind[b], addr_len(&a->sa)) == 0)
                return i;
    return -1;
}

/* Builds each worker's update for nrt: a bind that stays keeps its
 * sockets (nothing in their queues is lost), a new one is opened, a gone
 * one is closed by the worker once it stopped accepting on it. On failure
 * u[] keeps what was built: the caller's listeners_abandon() frees it,
 * which gcc 12's analyzer does not follow (it reports a leak). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
int listeners_update(struct process *r, struct runtime *nrt, struct worker_update **u)
{
    const struct config *oc = &r->rt->cfg, *nc = &nrt->cfg;
    char name[ADDR_STRLEN + CONFIG_NAME_MAX + 32];

    for (int l = 0, i = 0; l < nc->n_listeners; l++) {
        for (int b = 0; b < nc->listeners[l].n_bind; b++, i++) {
            int err;
            if (bind_index(oc, &nc->listeners[l].bind[b]) >= 0)
                continue;
            if ((err = listen_probe(&nc->listeners[l].bind[b])) < 0) {
                bind_name(nc, l, b, name, sizeof(name));
                log_error("reload: %s: %s; keeping the running configuration", name,
                          strerror(-err));
                return err;
            }
        }
    }
    for (int w = 0; w < r->n_workers; w++) {
        struct worker *wk = &r->workers[w];
        uint8_t kept[RUNTIME_MAX_BINDS] = {0};
        int i = 0;

        u[w] = calloc(1, sizeof(*u[w]));
        if (!u[w])
            return -ENOMEM;
        u[w]->rt = nrt;
        for (int l = 0; l < nc->n_listeners; l++) {
            for (int b = 0; b < nc->listeners[l].n_bind; b++, i++) {
                int old = bind_index(oc, &nc->listeners[l].bind[b]);
                int fd = old >= 0 ? wk->listen_fd[old]
                                  : listen_open(&nc->listeners[l].bind[b], nc->accept_backlog);
                if (fd < 0) {
                    bind_name(nc, l, b, name, sizeof(name));
                    log_error("reload: %s: %s; keeping the running configuration", name,
                              strerror(-fd));
                    return fd;
                }
                if (old >= 0)
                    kept[old] = 1;
                u[w]->listen_fd[i] = fd;
                u[w]->listen_li[i] = (uint8_t)l;
            }
        }
        u[w]->n_listen = i;
        for (int j = 0; j < wk->n_listen; j++)
            if (!kept[j])
                u[w]->close_fd[u[w]->n_close++] = wk->listen_fd[j];
    }
    return 0;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* Drops updates that were never handed over: closes the sockets opened for
 * them (not those kept from the running configuration). */
void listeners_abandon(struct process *r, struct worker_update **u)
{
    for (int w = 0; w < r->n_workers; w++) {
        if (!u[w])
            continue;
        for (int i = 0; i < u[w]->n_listen; i++) {
            int kept = 0;
            for (int j = 0; j < r->workers[w].n_listen && !kept; j++)
                kept = u[w]->listen_fd[i] == r->workers[w].listen_fd[j];
            if (!kept)
                close(u[w]->listen_fd[i]);
        }
        free(u[w]);
    }
}

/* Whether fd is a TCP socket listening on an IPv4 or IPv6 address. */
static int inet_listener(int fd)
{
    union sockaddr_inet a = {0};
    socklen_t len = sizeof(a), olen = sizeof(int);
    int on = 0, type = 0;

    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) == 0 && on &&
           getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &olen) == 0 && type == SOCK_STREAM &&
           getsockname(fd, &a.sa, &len) == 0 &&
           (a.sa.sa_family == AF_INET || a.sa.sa_family == AF_INET6);
}

int listeners_inherit(struct process *r)
{
    DIR *d = r->predecessor ? opendir("/proc/self/fd") : NULL;
    struct dirent *e;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name), *more;
        if (fd <= STDERR_FILENO || fd == dirfd(d) || !inet_listener(fd))
            continue;
        if (!(more = realloc(r->inherited, (size_t)(r->n_inherited + 1) * sizeof(*more))))
            break; /* what is not taken is bound beside the predecessor's */
        r->inherited = more;
        r->inherited[r->n_inherited++] = fd;
    }
    closedir(d);
    return r->n_inherited;
}

int listeners_take(struct process *r, const union sockaddr_inet *a)
{
    for (int i = 0; i < r->n_inherited; i++) {
        union sockaddr_inet got;
        socklen_t len = sizeof(got);
        int fd = r->inherited[i];

        if (fd < 0 || getsockname(fd, &got.sa, &len) == -1 || len != addr_len(&a->sa) ||
            memcmp(&got, a, len) != 0)
            continue;
        r->inherited[i] = -1;
        return fd;
    }
    return -1;
}

void listeners_inherit_done(struct process *r)
{
    int left = 0;

    for (int i = 0; i < r->n_inherited; i++) {
        if (r->inherited[i] >= 0) {
            close(r->inherited[i]);
            left++;
        }
    }
    if (r->n_inherited)
        log_info("upgrade: took %d of pid %d's %d listening sockets%s", r->n_inherited - left,
                 (int)r->predecessor, r->n_inherited,
                 left ? " (the others' addresses are no longer configured)" : "");
    free(r->inherited);
    r->inherited = NULL;
    r->n_inherited = 0;
}
