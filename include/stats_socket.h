/* The stats socket: a unix socket served by its own thread, answering
 * line commands and HTTP GETs (stats_report.h); and the admin listener, a
 * TCP socket the same thread serves, HTTP only, to the addresses allowed.
 * Off the data path: a slow or stuck client costs only its own slot until
 * its deadline. */
#ifndef RINGRELAY_STATS_SOCKET_H
#define RINGRELAY_STATS_SOCKET_H

#include "addr.h"
#include "cidr.h"
#include "stats_report.h"

#include <stdio.h>
#include <sys/types.h>

/* What the server asks of the process. */
struct stats_source {
    void (*fill)(struct stats_report *r, void *ctx); /* all but sum, names, stats_busy */
    void (*conns)(FILE *out, void *ctx);             /* show conns */
    void *ctx;
};

/* Where to serve. */
struct stats_listen {
    const char *path;                 /* the unix socket; NULL: none */
    gid_t gid;                        /* its group, or -1 */
    const union sockaddr_inet *admin; /* the admin listener; NULL: none */
    const struct cidr *allow;         /* who may use it */
    int n_allow;
};

struct stats_socket;

/* Creates the unix socket at path with mode 0660 (group gid unless -1):
 * bound beside it and renamed over it, so a process taking over from
 * another never leaves the path missing. Binds the admin listener with
 * SO_REUSEPORT, so a successor binds beside it. Starts the thread. NULL
 * with err filled. */
struct stats_socket *stats_socket_start(const struct stats_listen *at,
                                        const struct stats_source *src, char *err, size_t errlen);

/* Closes the admin listener (a successor serves it now); the unix socket
 * stays. */
void stats_socket_close_admin(struct stats_socket *s);

/* Stops the thread, closes the socket, and removes the path if it is
 * still this process's socket. */
void stats_socket_stop(struct stats_socket *s);

#endif
