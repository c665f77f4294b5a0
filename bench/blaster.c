/* blaster: opens N connections and writes fixed-size chunks on each as fast
 * as the peer takes them for a fixed time; prints the bytes sent. */
#include "tool.h"

#include <errno.h>
#include <getopt.h>
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
    pid_t cpu_pid;
    int fds[MAX_CONNS];
    long live;
    long errors;
    unsigned long long bytes;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: blaster [options] HOST:PORT\n"
               "\n"
               "Opens N connections to HOST:PORT and writes CHUNK-byte blocks on each as fast\n"
               "as they are taken, for DURATION, then closes them and prints one line:\n"
               "  connections=N seconds=S bytes=B gbps=G errors=E [cpu_s=C]\n"
               "\n"
               "  -c, --connections N   connections (default 4)\n"
               "  -d, --duration DUR    how long to write: 10, 10s, 500ms (default 10s)\n"
               "  -b, --chunk BYTES     bytes per write (default 65536)\n"
               "  -p, --cpu-pid PID     also print PID's CPU seconds over the run\n"
               "  -h, --help\n");
}

/* Fills b from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct blaster *b, int argc, char **argv)
{
    static const struct option opts[] = {{"connections", required_argument, NULL, 'c'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"chunk", required_argument, NULL, 'b'},
                                         {"cpu-pid", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    long pid = 0;
    int c, bad = 0;

    b->conns = 4;
    b->chunk = 65536;
    b->duration = 10;
    while ((c = getopt_long(argc, argv, "c:d:b:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            bad |= tool_parse_count(optarg, 1, MAX_CONNS, &b->conns);
            break;
        case 'd':
            bad |= tool_parse_seconds(optarg, &b->duration);
            break;
        case 'b':
            bad |= tool_parse_count(optarg, 1, MAX_CHUNK, &b->chunk);
            break;
        case 'p':
            bad |= tool_parse_count(optarg, 1, 1 << 22, &pid);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            bad = -1;
        }
    }
    b->cpu_pid = (pid_t)pid;
    if (bad || optind != argc - 1 || tool_parse_addr(argv[optind], &b->addr) != 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Opens every connection and registers it for writability. Returns 0 or -errno. */
static int open_all(struct blaster *b, int ep)
{
    for (long i = 0; i < b->conns; i++) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
        int fd = tool_connect(&b->addr, 5000);

        if (fd < 0) {
            fprintf(stderr, "blaster: connect %ld: %s\n", i, strerror(-fd));
            return fd;
        }
        b->fds[i] = fd;
        if (tool_set_nonblock(fd) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
            return -errno;
    }
    b->live = b->conns;
    return 0;
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
        int ms = (int)((deadline - now + 999999) / 1000000);
        int n = epoll_wait(ep, evs, 256, ms);

        for (int i = 0; i < n; i++)
            pump(b, (long)evs[i].data.u64, buf);
    }
}

int main(int argc, char **argv)
{
    static struct blaster b;
    static char buf[MAX_CHUNK];
    struct tool_cpu cpu0 = {0}, cpu1 = {0};
    uint64_t t0, t1;
    int ep;

    if (parse_args(&b, argc, argv) != 0)
        return 2;
    tool_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    memset(buf, 'x', sizeof(buf));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1 || open_all(&b, ep) != 0)
        return 1;
    if (b.cpu_pid && tool_cpu_read(b.cpu_pid, &cpu0) != 0)
        fprintf(stderr, "blaster: cannot read CPU time of pid %d\n", (int)b.cpu_pid);
    t0 = tool_now_ns();
    run(&b, ep, buf, t0 + (uint64_t)(b.duration * 1e9));
    t1 = tool_now_ns();
    printf("connections=%ld seconds=%.3f bytes=%llu gbps=%.3f errors=%ld", b.conns,
           (double)(t1 - t0) / 1e9, b.bytes, (double)b.bytes * 8 / (double)(t1 - t0), b.errors);
    if (b.cpu_pid && tool_cpu_read(b.cpu_pid, &cpu1) == 0)
        printf(" cpu_s=%.3f", tool_cpu_seconds(&cpu0, &cpu1));
    printf("\n");
    fflush(stdout);
    for (long i = 0; i < b.conns; i++)
        if (b.fds[i] >= 0)
            close(b.fds[i]);
    return b.live > 0 ? 0 : 1;
}
