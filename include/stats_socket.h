/* The stats socket: a unix socket served by its own thread, answering
 * line commands and HTTP GETs (stats_report.h). Off the data path: a slow
 * or stuck client costs only its own slot until its deadline. */
#ifndef RINGRELAY_STATS_SOCKET_H
#define RINGRELAY_STATS_SOCKET_H

#include "stats_report.h"

#include <stdio.h>
#include <sys/types.h>

/* What the server asks of the process. */
struct stats_source {
    void (*fill)(struct stats_report *r, void *ctx); /* all but sum, names, stats_busy */
    void (*conns)(FILE *out, void *ctx);             /* show conns */
    void *ctx;
};

struct stats_socket;

/* Creates the socket at path with mode 0660 (group gid unless -1): bound
 * beside it and renamed over it, so a process taking over from another
 * never leaves the path missing. Starts the thread. NULL with err filled. */
struct stats_socket *stats_socket_start(const char *path, gid_t gid, const struct stats_source *src,
                                        char *err, size_t errlen);

/* Stops the thread, closes the socket, and removes the path if it is
 * still this process's socket. */
void stats_socket_stop(struct stats_socket *s);

#endif
