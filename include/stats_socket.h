/* The stats socket: a unix socket served by its own thread, answering
 * line commands and HTTP GETs (stats_report.h); and the admin listener, a
 * TCP socket the same thread serves, HTTP only, to the addresses allowed.
 * Off the data path: a slow or stuck client costs only its own slot until
 * its deadline, and a full table makes room by closing its oldest client,
 * so a probe is never turned away. */
#ifndef RINGRELAY_STATS_SOCKET_H
#define RINGRELAY_STATS_SOCKET_H

#include "addr.h"
#include "cidr.h"
#include "stats_report.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct admin_cmd;

/* Clients each listening socket serves at once: a share of the open-file
 * limit within these (the descriptor budget holds them). A request must be
 * whole within 2 s of the accept, and a reader must take some of its
 * answer every 2 s. */
#define STATS_SOCKET_CLIENTS_MIN 16
#define STATS_SOCKET_CLIENTS_MAX 128

/* What the server asks of the process. */
struct stats_source {
    /* All but sum and the socket's own counts; names with the
     * configuration they name, read together (a reload reassigns them). */
    void (*fill)(struct stats_report *r, void *ctx);
    /* Why the process is not ready, into why ("" when it is): /ready,
     * without the cost of a whole report. */
    void (*ready)(char *why, size_t cap, void *ctx);
    /* A write command from who ("uid=0 pid=42"), or show conns (cmd
     * NULL): writes its answer (for a command one line, "ok: ..." or
     * "error: ..."). Returns 0 when done, -1 when refused, or 1 when the
     * workers do it: *round is then polled with round_end(), and the
     * server goes on serving others meanwhile. */
    int (*command)(const struct admin_cmd *cmd, const char *who, FILE *out, void **round,
                   void *ctx);
    /* -EINPROGRESS while the workers are at round; then its answer written
     * to out, round let go, and 0 or -1 as command() returns. */
    int (*round_end)(void *round, FILE *out, void *ctx);
    /* Lets go of a round whose client is gone (at stop). */
    void (*round_drop)(void *round, void *ctx);
    void *ctx;
};

/* The admin listener. */
struct stats_admin {
    const union sockaddr_inet *addr;
    const struct cidr *allow; /* who may use it */
    int n_allow;
    int later; /* not served until stats_socket_admin_listen(); bound, not listening */
    int fd;    /* listening already (inherited from a predecessor, which serves it), or -1 */
};

struct stats_socket;

/* The clients per listening socket under an open-file limit: a 64th of
 * it, within STATS_SOCKET_CLIENTS_MIN and _MAX. */
uint32_t stats_socket_clients(uint64_t fd_limit);

/* Creates the server and its unix socket at path (NULL: none) with mode
 * 0660 (group gid unless -1): bound beside it and renamed over it, so a
 * process taking over from another never leaves the path missing. Its
 * clients may use the write commands only at level STATS_LEVEL_ADMIN;
 * each listening socket serves clients at once. Done before privileges
 * are dropped. NULL with err filled. */
struct stats_socket *stats_socket_open(const char *path, gid_t gid, enum stats_level level,
                                       uint32_t clients, const struct stats_source *src, char *err,
                                       size_t errlen);

/* Binds the admin listener (NULL: none; admin->fd if given) with
 * SO_REUSEPORT, open across exec: a successor inherits it, or else binds
 * beside it as the same user; then starts the thread. Done after
 * privileges are dropped. Returns 0, or -1 with err filled
 * (stats_socket_stop() still frees s). */
int stats_socket_serve(struct stats_socket *s, const struct stats_admin *admin, char *err,
                       size_t errlen);

/* The admin socket given with later listens (before this returns) and is
 * served. */
void stats_socket_admin_listen(struct stats_socket *s);

/* Closes the admin listener (a successor serves it now), after taking in
 * what is queued on it; the unix socket stays. */
void stats_socket_close_admin(struct stats_socket *s);

/* Stops the thread, closes the socket, and removes the path if it is
 * still this process's socket. */
void stats_socket_stop(struct stats_socket *s);

#endif
