/* How the open-file limit is shared: two sockets per connection, what the
 * process itself holds, a spare, and each worker's pool of splice pipes. */
#ifndef RINGRELAY_FD_BUDGET_H
#define RINGRELAY_FD_BUDGET_H

#include <stdint.h>

/* Splice pipes per worker when the limit leaves room (two descriptors each). */
#define FD_BUDGET_PIPES 128
/* Descriptors kept spare, when the limit leaves room: stats clients past the
 * counted ones, a reload's new listeners, a log being reopened. */
#define FD_BUDGET_SPARE 64
/* Without max_connections the relay asks for this many and, below the first
 * tier, puts connections ahead of pipes and the spare. */
#define FD_BUDGET_DEFAULT 10000
#define FD_BUDGET_FIRST 1000

/* What the process holds apart from connections and pipes. */
struct fd_needs {
    uint32_t workers;
    uint32_t binds;    /* listening sockets per worker */
    uint32_t checkers; /* health probes open at once (and the checker's own epoll) */
    uint32_t stats;    /* a stats socket's and an admin listener's: each socket and its clients */
};

struct fd_budget {
    uint64_t limit;       /* the open-file limit the budget was fitted to */
    uint32_t asked;       /* max_connections, or FD_BUDGET_DEFAULT for 0 */
    uint32_t connections; /* what fits; never 0 */
    uint32_t fixed;       /* held by the process itself */
    uint32_t spare;       /* up to FD_BUDGET_SPARE */
    uint32_t pipes;       /* per worker, up to FD_BUDGET_PIPES */
};

/* The descriptors the process holds apart from connections and pipes. */
uint32_t fd_budget_fixed(const struct fd_needs *n);

/* Fits max_connections (asked; 0: as many as fit up to FD_BUDGET_DEFAULT) to
 * limit. Asked explicitly, connections come first, then the spare, then
 * pipes. With 0, the first FD_BUDGET_FIRST connections come first, then the
 * spare and pipes, then the rest. Each share is non-decreasing in limit. */
void fd_budget_fit(struct fd_budget *b, uint64_t limit, uint32_t asked, const struct fd_needs *n);

/* 1 when the result deserves a warning: fewer connections than asked for,
 * or fewer than FD_BUDGET_FIRST with none asked for. */
int fd_budget_short(const struct fd_budget *b, uint32_t asked);

#endif
