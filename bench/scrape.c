/* scrape: asks an HTTP server for a list of paths, each once per period,
 * as Prometheus and a health checker do with a relay's admin listener, at
 * the smallest cost to the CPU it shares with the load generator. */
#include "tool.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct scrape {
    struct tool_addr addr;
    double period, duration;
    const char *paths; /* comma-separated */
};

static const char usage[] =
    "usage: scrape [options] HOST:PORT\n"
    "\n"
    "GETs each path from HOST:PORT (HTTP/1.0, one connection each) once a\n"
    "period until SIGTERM or SIGINT, or for at most DURATION. Prints \"ok\"\n"
    "(flushed) after the first round in which every answer was a 200, and\n"
    "\"rounds=N failed=N\" at the end.\n"
    "\n"
    "  -p, --paths LIST     comma-separated (default /metrics,/ready)\n"
    "  -i, --period DUR     (default 100ms)\n"
    "  -d, --duration DUR   (default 600s)\n"
    "  -h, --help\n";

/* One GET, read to its end. Returns 1 for a 200, 0 otherwise. */
static int get(const struct tool_addr *a, const char *path, size_t len)
{
    char req[256], buf[16384];
    int fd = tool_connect(a, 2000), n, ok = 0, first = 1;
    ssize_t got;

    if (fd < 0)
        return 0;
    n = snprintf(req, sizeof(req), "GET %.*s HTTP/1.0\r\n\r\n", (int)len, path);
    if (n > 0 && (size_t)n < sizeof(req) && send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        while ((got = recv(fd, buf, sizeof(buf), 0)) > 0) {
            if (first)
                ok = got >= 12 && memcmp(buf, "HTTP/1.0 200", 12) == 0;
            first = 0;
        }
    }
    close(fd);
    return ok;
}

int main(int argc, char **argv)
{
    static const struct tool_opt opts[] = {
        {"paths", 'p', TOOL_OPT_STRING, offsetof(struct scrape, paths), 0, 0},
        {"period", 'i', TOOL_OPT_SECONDS, offsetof(struct scrape, period), 0, 0},
        {"duration", 'd', TOOL_OPT_SECONDS, offsetof(struct scrape, duration), 0, 0},
        {NULL, 0, 0, 0, 0, 0}};
    struct scrape s = {.period = 0.1, .duration = 600, .paths = "/metrics,/ready"};
    uint64_t end, next;
    long rounds = 0, failed = 0;
    int sfd, said = 0;

    if (tool_parse_args(argc, argv, opts, &s, usage, &s.addr) < 0)
        return 2;
    sfd = tool_signalfd();
    end = tool_deadline(s.duration);
    for (next = tool_now_ns(); tool_now_ns() < end; rounds++) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        int all = 1;

        for (const char *q = s.paths; *q;) {
            size_t len = strcspn(q, ",");
            all &= get(&s.addr, q, len);
            q += len + (q[len] == ',');
        }
        failed += !all;
        if (all && !said) {
            printf("ok\n");
            fflush(stdout);
            said = 1;
        }
        next += (uint64_t)(s.period * 1e9);
        if (poll(&p, 1, tool_ms_until(next, tool_now_ns())) > 0 &&
            (tool_signal_take(sfd) & TOOL_SIG_STOP))
            break;
    }
    printf("rounds=%ld failed=%ld\n", rounds, failed);
    return 0;
}
