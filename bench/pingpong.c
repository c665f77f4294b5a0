/* pingpong: C connections each send an S-byte message, wait for all S bytes
 * to come back, and repeat; prints request rate and round-trip times. */
#include "tool.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_CONNS 16384
#define MAX_SIZE (1 << 20)
/* Round trips are kept in 1-microsecond buckets up to this; longer ones only
 * count towards the mean and the maximum. */
#define HIST_US 1000000

struct ping_conn {
    bool want_out;
    size_t sent, got;
    uint64_t start;
};

struct pingpong {
    struct tool_addr addr;
    long conns, size;
    double duration, warmup;
    long cpu_pid;
    int ep;
    uint8_t *msg, *scratch;
    int *fds; /* -1 once dropped */
    struct ping_conn *c;
    long live;
    uint64_t warm_end, end;
    unsigned long long requests, errors, over;
    double sum_us;
    uint64_t max_ns;
    uint32_t hist[HIST_US];
};

static const char usage[] =
    "usage: pingpong [options] HOST:PORT\n"
    "\n"
    "Opens C connections to HOST:PORT (an echo server, possibly behind a relay).\n"
    "Each sends an S-byte message, waits until all S bytes came back, and sends\n"
    "the next. After WARMUP it measures for DURATION and prints one line:\n"
    "  connections=C size=S seconds=D requests=N rps=R mean_us=M p50_us=P\n"
    "  p99_us=P p999_us=Q max_us=X errors=E [cpu_s=C] sys_cpu_s=S\n"
    "Only round trips that start after the warm-up and end within the window\n"
    "count.\n"
    "\n"
    "  -c, --connections N   connections (default 50)\n"
    "  -s, --size BYTES      message size (default 64)\n"
    "  -d, --duration DUR    measured time: 10, 10s, 500ms (default 10s)\n"
    "  -w, --warmup DUR      unmeasured time first (default 500ms)\n"
    "  -p, --cpu-pid PID     also print PID's CPU seconds over the measured time\n"
    "  -h, --help\n";

/* Fills p from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct pingpong *p, int argc, char **argv)
{
    static const struct tool_opt opts[] = {
        {"connections", 'c', TOOL_OPT_COUNT, offsetof(struct pingpong, conns), 1, MAX_CONNS},
        {"size", 's', TOOL_OPT_COUNT, offsetof(struct pingpong, size), 1, MAX_SIZE},
        {"duration", 'd', TOOL_OPT_SECONDS, offsetof(struct pingpong, duration), 0, 0},
        {"warmup", 'w', TOOL_OPT_SECONDS, offsetof(struct pingpong, warmup), 0, 0},
        {"cpu-pid", 'p', TOOL_OPT_COUNT, offsetof(struct pingpong, cpu_pid), 1, 1 << 22},
        {NULL, 0, 0, 0, 0, 0}};

    p->conns = 50;
    p->size = 64;
    p->duration = 10;
    p->warmup = 0.5;
    if (tool_parse_args(argc, argv, opts, p, usage, &p->addr) != 0)
        return -1;
    if (p->duration <= 0) {
        fputs(usage, stderr);
        return -1;
    }
    return 0;
}

static void conn_drop(struct pingpong *p, long i)
{
    p->errors++;
    p->live--;
    close(p->fds[i]);
    p->fds[i] = -1;
}

/* Asks for writability only while a message is half sent. */
static void want_out(struct pingpong *p, long i, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u64 = (uint64_t)i};

    if (p->c[i].want_out != on && epoll_ctl(p->ep, EPOLL_CTL_MOD, p->fds[i], &ev) == 0)
        p->c[i].want_out = on;
}

/* Sends what is left of the current message. */
static void send_rest(struct pingpong *p, long i)
{
    struct ping_conn *c = &p->c[i];

    while (c->sent < (size_t)p->size) {
        ssize_t n = send(p->fds[i], p->msg + c->sent, (size_t)p->size - c->sent, MSG_NOSIGNAL);

        if (n == -1 && errno == EAGAIN) {
            want_out(p, i, true);
            return;
        }
        if (n == -1 && errno != EINTR) {
            conn_drop(p, i);
            return;
        }
        if (n > 0)
            c->sent += (size_t)n;
    }
    want_out(p, i, false);
}

static void send_next(struct pingpong *p, long i, uint64_t now)
{
    p->c[i].sent = 0;
    p->c[i].got = 0;
    p->c[i].start = now;
    send_rest(p, i);
}

static void record(struct pingpong *p, uint64_t ns)
{
    uint64_t us = ns / 1000;

    p->requests++;
    p->sum_us += (double)ns / 1000;
    if (ns > p->max_ns)
        p->max_ns = ns;
    if (us < HIST_US)
        p->hist[us]++;
    else
        p->over++;
}

/* Reads the echo; when the whole message is back, records it and sends the
 * next one unless the window is over. */
static void recv_echo(struct pingpong *p, long i)
{
    struct ping_conn *c = &p->c[i];

    while (c->got < (size_t)p->size) {
        ssize_t n = recv(p->fds[i], p->scratch, (size_t)p->size - c->got, 0);

        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            conn_drop(p, i);
            return;
        }
        c->got += (size_t)n;
    }
    uint64_t now = tool_now_ns();

    if (c->start >= p->warm_end && now <= p->end)
        record(p, now - c->start);
    if (now < p->end)
        send_next(p, i, now);
}

/* The smallest microsecond value at or above fraction q of the samples. */
static double percentile(const struct pingpong *p, double q)
{
    unsigned long long want = (unsigned long long)ceil(q * (double)p->requests);
    unsigned long long seen = 0;

    if (p->requests == 0)
        return 0;
    for (long us = 0; us < HIST_US; us++) {
        seen += p->hist[us];
        if (seen >= want)
            return (double)us;
    }
    return (double)p->max_ns / 1000;
}

/* Runs the exchange; takes CPU readings at the start and end of the window. */
static void run(struct pingpong *p, struct tool_cpu *cpu0)
{
    struct epoll_event evs[512];
    bool snapped = false;
    uint64_t now;

    for (long i = 0; i < p->conns; i++)
        send_next(p, i, tool_now_ns());
    while (p->live > 0 && (now = tool_now_ns()) < p->end) {
        int ms = tool_ms_until(snapped ? p->end : p->warm_end, now);
        int n;

        if (!snapped && now >= p->warm_end) {
            snapped = true;
            tool_cpu_read((pid_t)p->cpu_pid, cpu0);
        }
        n = epoll_wait(p->ep, evs, 512, ms);
        for (int k = 0; k < n; k++) {
            long i = (long)evs[k].data.u64;

            if (p->fds[i] >= 0 && (evs[k].events & EPOLLOUT))
                send_rest(p, i);
            if (p->fds[i] >= 0 && (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                recv_echo(p, i);
        }
    }
}

static void report(const struct pingpong *p, const struct tool_cpu *cpu0)
{
    double mean = p->requests ? p->sum_us / (double)p->requests : 0;

    printf("connections=%ld size=%ld seconds=%.3f requests=%llu rps=%.1f mean_us=%.1f "
           "p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f errors=%llu",
           p->conns, p->size, p->duration, p->requests, (double)p->requests / p->duration, mean,
           percentile(p, 0.50), percentile(p, 0.99), percentile(p, 0.999), (double)p->max_ns / 1000,
           p->errors);
    tool_end_line((pid_t)p->cpu_pid, cpu0);
}

int main(int argc, char **argv)
{
    static struct pingpong p;
    struct tool_cpu cpu0 = {0};

    if (parse_args(&p, argc, argv) != 0)
        return 2;
    tool_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    p.fds = calloc((size_t)p.conns, sizeof(*p.fds));
    p.c = calloc((size_t)p.conns, sizeof(*p.c));
    p.msg = malloc((size_t)p.size);
    p.scratch = malloc((size_t)p.size);
    p.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!p.fds || !p.c || !p.msg || !p.scratch || p.ep == -1)
        return 1;
    memset(p.msg, 'p', (size_t)p.size);
    if (tool_connect_watch("pingpong", &p.addr, p.ep, EPOLLIN, p.fds, p.conns) != 0)
        return 1;
    p.live = p.conns;
    p.warm_end = tool_deadline(p.warmup);
    p.end = p.warm_end + (uint64_t)(p.duration * 1e9);
    run(&p, &cpu0);
    report(&p, &cpu0);
    return p.live > 0 ? 0 : 1;
}
