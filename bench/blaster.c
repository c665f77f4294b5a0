/* blaster: opens N connections and writes fixed-size chunks on each as fast
 * as the peer takes them for a fixed time; prints the bytes sent. */
#include "tool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define MAX_CHUNK (1 << 20)
/* Writes per ready event, so one connection cannot starve the others. */
#define WRITES_PER_EVENT 16

struct blaster {
    struct tool_addr addr;
    long conns;
    long chunk;
    double duration;
    long cpu_pid;
    int fds[MAX_CONNS];
    long live;
    long errors;
    unsigned long long bytes;
};

static const char usage[] =
    "usage: blaster [options] HOST:PORT\n"
    "\n"
    "Opens N connections to HOST:PORT and writes CHUNK-byte blocks on each as fast\n"
    "as they are taken, for DURATION, then closes them and prints one line:\n"
    "  connections=N seconds=S bytes=B gbps=G errors=E [cpu_s=C] sys_cpu_s=S\n"
    "\n"
    "  -c, --connections N   connections (default 4)\n"
    "  -d, --duration DUR    how long to write: 10, 10s, 500ms (default 10s)\n"
    "  -b, --chunk BYTES     bytes per write (default 65536)\n"
    "  -p, --cpu-pid PID     also print PID's CPU seconds over the run (sys_cpu_s:\n"
    "                        the whole machine's, always)\n"
    "  -h, --help\n";

/* Fills b from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct blaster *b, int argc, char **argv)
{
    static const struct tool_opt opts[] = {
        {"connections", 'c', TOOL_OPT_COUNT, offsetof(struct blaster, conns), 1, MAX_CONNS},
        {"duration", 'd', TOOL_OPT_SECONDS, offsetof(struct blaster, duration), 0, 0},
        {"chunk", 'b', TOOL_OPT_COUNT, offsetof(struct blaster, chunk), 1, MAX_CHUNK},
        {"cpu-pid", 'p', TOOL_OPT_COUNT, offsetof(struct blaster, cpu_pid), 1, 1 << 22},
        {NULL, 0, 0, 0, 0, 0}};

    b->conns = 4;
    b->chunk = 65536;
    b->duration = 10;
    return tool_parse_args(argc, argv, opts, b, usage, &b->addr);
}

/* Writes on connection i until the socket is full; drops it on error. */
static void pump(struct blaster *b, long i, const char *buf)
{
    for (int n = 0; n < WRITES_PER_EVENT; n++) {
        ssize_t w = send(b->fds[i], buf, (size_t)b->chunk, MSG_NOSIGNAL);

        if (w > 0) {
            b->bytes += (unsigned long long)w;
            continue;
        }
        if (w == -1 && (errno == EAGAIN || errno == EINTR))
            return;
        b->errors++;
        b->live--;
        close(b->fds[i]);
        b->fds[i] = -1;
        return;
    }
}

/* Runs the write loop until the deadline or until no connection is left. */
static void run(struct blaster *b, int ep, const char *buf, uint64_t deadline)
{
    struct epoll_event evs[256];
    uint64_t now;

    while (b->live > 0 && (now = tool_now_ns()) < deadline) {
        int n = epoll_wait(ep, evs, 256, tool_ms_until(deadline, now));

        for (int i = 0; i < n; i++)
            pump(b, (long)evs[i].data.u64, buf);
    }
}

int main(int argc, char **argv)
{
    static struct blaster b;
    static char buf[MAX_CHUNK];
    struct tool_cpu cpu0 = {0};
    uint64_t t0, t1;
    int ep;

    if (parse_args(&b, argc, argv) != 0)
        return 2;
    tool_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    memset(buf, 'x', sizeof(buf));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1 || tool_connect_watch("blaster", &b.addr, ep, EPOLLOUT, b.fds, b.conns) != 0)
        return 1;
    b.live = b.conns;
    if (tool_cpu_read((pid_t)b.cpu_pid, &cpu0) != 0)
        fprintf(stderr, "blaster: cannot read CPU time of pid %d\n", (int)b.cpu_pid);
    t0 = tool_now_ns();
    run(&b, ep, buf, tool_deadline(b.duration));
    t1 = tool_now_ns();
    printf("connections=%ld seconds=%.3f bytes=%llu gbps=%.3f errors=%ld", b.conns,
           (double)(t1 - t0) / 1e9, b.bytes, (double)b.bytes * 8 / (double)(t1 - t0), b.errors);
    tool_end_line((pid_t)b.cpu_pid, &cpu0);
    for (long i = 0; i < b.conns; i++)
        if (b.fds[i] >= 0)
            close(b.fds[i]);
    return b.live > 0 ? 0 : 1;
}
