/* idle: opens N connections that send nothing and holds them until told to
 * stop, so a script can measure what idle connections cost a relay. */
#include "tool.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CONNS 1000000

struct idle {
    struct tool_addr addr;
    long conns;
    double duration, connect_timeout;
    int *fds;
    long open;
};

static const char usage[] =
    "usage: idle [options] HOST:PORT\n"
    "\n"
    "Opens N connections to HOST:PORT one after another and sends nothing. Once\n"
    "all are established it prints \"established=N seconds=S\" (flushed) and holds\n"
    "them until SIGTERM or SIGINT, or for at most DURATION; then it resets them\n"
    "(SO_LINGER 0, so no TIME_WAIT is left behind) and prints \"closed=N\".\n"
    "If a connect fails it prints \"established=K error=...\" and exits 1.\n"
    "\n"
    "  -n, --connections N        connections (default 1000)\n"
    "  -d, --duration DUR         hold at most this long (default 600s)\n"
    "  -t, --connect-timeout DUR  per connection (default 5s)\n"
    "  -h, --help\n";

/* Fills d from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct idle *d, int argc, char **argv)
{
    static const struct tool_opt opts[] = {
        {"connections", 'n', TOOL_OPT_COUNT, offsetof(struct idle, conns), 1, MAX_CONNS},
        {"duration", 'd', TOOL_OPT_SECONDS, offsetof(struct idle, duration), 0, 0},
        {"connect-timeout", 't', TOOL_OPT_SECONDS, offsetof(struct idle, connect_timeout), 0, 0},
        {NULL, 0, 0, 0, 0, 0}};

    d->conns = 1000;
    d->duration = 600;
    d->connect_timeout = 5;
    return tool_parse_args(argc, argv, opts, d, usage, &d->addr);
}

/* Opens the connections in turn. Returns 0 or -errno of the first failure. */
static int open_all(struct idle *d)
{
    int ms = (int)(d->connect_timeout * 1000);

    return tool_connect_all(&d->addr, ms > 0 ? ms : 1, d->fds, d->conns, &d->open);
}

/* Closes every connection with a reset. */
static void close_all(struct idle *d)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    for (long i = 0; i < d->open; i++) {
        setsockopt(d->fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(d->fds[i]);
    }
}

/* Waits for SIGTERM/SIGINT on sfd, at most d->duration seconds. */
static void hold(const struct idle *d, int sfd)
{
    uint64_t deadline = tool_deadline(d->duration);
    uint64_t now;

    while ((now = tool_now_ns()) < deadline) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};

        if (poll(&p, 1, tool_ms_until(deadline, now)) == 1 &&
            (tool_signal_take(sfd) & TOOL_SIG_STOP))
            return;
    }
}

int main(int argc, char **argv)
{
    static struct idle d;
    long limit;
    uint64_t t0;
    int sfd, err;

    if (parse_args(&d, argc, argv) != 0)
        return 2;
    limit = tool_raise_nofile();
    if (limit > 0 && d.conns > limit - 16)
        fprintf(stderr, "idle: %ld connections need more than the %ld open files allowed\n",
                d.conns, limit);
    sfd = tool_signalfd();
    d.fds = calloc((size_t)d.conns, sizeof(*d.fds));
    if (sfd < 0 || !d.fds)
        return 1;
    t0 = tool_now_ns();
    err = open_all(&d);
    if (err) {
        printf("established=%ld error=%s\n", d.open, strerror(-err));
        fflush(stdout);
        close_all(&d);
        return 1;
    }
    printf("established=%ld seconds=%.3f\n", d.open, (double)(tool_now_ns() - t0) / 1e9);
    fflush(stdout);
    hold(&d, sfd);
    close_all(&d);
    printf("closed=%ld\n", d.open);
    fflush(stdout);
    return 0;
}
