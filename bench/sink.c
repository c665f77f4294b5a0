/* sink: accepts any number of connections, strips a leading PROXY v1/v2
 * header from each, and discards and counts everything else. */
#include "pp_strip.h"
#include "tool.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define READ_MAX (1 << 20)
/* Reads per ready event, so one busy connection cannot starve the others. */
#define READS_PER_EVENT 8

enum sink_kind { SINK_LISTENER, SINK_SIGNAL, SINK_CONN };

struct sink_conn {
    enum sink_kind kind;
    int fd;
    bool in_header;
    struct pp_strip pp;
};

struct sink_stats {
    unsigned long long accepted, open, hdr_v1, hdr_v2, hdr_none, hdr_bad, bytes, errors;
};

struct sink {
    struct tool_addr addr;
    const char *stats_path;
    bool copy;
    double duration;
    int ep;
    struct sink_conn listener, signal;
    struct sink_stats st;
};

static char read_buf[READ_MAX];

static void usage(FILE *f)
{
    fprintf(f, "usage: sink [options] ADDR:PORT\n"
               "\n"
               "Listens on ADDR:PORT, accepts any number of connections, strips a leading\n"
               "PROXY protocol v1 line or v2 header from each, and discards the rest. On\n"
               "SIGTERM or SIGINT (or after DURATION) it writes one line and exits; SIGUSR1\n"
               "writes the same line without exiting:\n"
               "  accepted=A open=O hdr_v1=N hdr_v2=N hdr_none=N hdr_bad=N bytes=B errors=E\n"
               "(bytes counts payload only, headers excluded).\n"
               "\n"
               "  -s, --stats-file PATH  write the line to PATH (replaced atomically)\n"
               "                         instead of stdout\n"
               "  -d, --duration DUR     exit after this long anyway (default 3600s)\n"
               "      --copy             copy payload into memory instead of letting the\n"
               "                         kernel drop it (MSG_TRUNC)\n"
               "  -h, --help\n");
}

/* Fills s from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct sink *s, int argc, char **argv)
{
    static const struct option opts[] = {{"stats-file", required_argument, NULL, 's'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"copy", no_argument, NULL, 'C'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, bad = 0;

    s->duration = 3600;
    while ((c = getopt_long(argc, argv, "s:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            s->stats_path = optarg;
            break;
        case 'd':
            bad |= tool_parse_seconds(optarg, &s->duration);
            break;
        case 'C':
            s->copy = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            bad = -1;
        }
    }
    if (bad || optind != argc - 1 || tool_parse_addr(argv[optind], &s->addr) != 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Writes the counters as one line to the stats file or stdout. */
static void stats_write(const struct sink *s)
{
    char tmp[4096];
    FILE *f = stdout;

    if (s->stats_path) {
        snprintf(tmp, sizeof(tmp), "%s.tmp", s->stats_path);
        f = fopen(tmp, "w");
        if (!f) {
            perror("sink: stats file");
            return;
        }
    }
    fprintf(f,
            "accepted=%llu open=%llu hdr_v1=%llu hdr_v2=%llu hdr_none=%llu hdr_bad=%llu "
            "bytes=%llu errors=%llu\n",
            s->st.accepted, s->st.open, s->st.hdr_v1, s->st.hdr_v2, s->st.hdr_none, s->st.hdr_bad,
            s->st.bytes, s->st.errors);
    fflush(f);
    if (f != stdout && (fclose(f) != 0 || rename(tmp, s->stats_path) == -1))
        perror("sink: stats file");
}

static void conn_close(struct sink *s, struct sink_conn *c)
{
    close(c->fd);
    free(c);
    s->st.open--;
}

/* Accepts every pending connection. */
static void accept_all(struct sink *s)
{
    for (;;) {
        struct epoll_event ev = {.events = EPOLLIN};
        struct sink_conn *c;
        int fd = accept4(s->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                s->st.errors++;
            return;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            s->st.errors++;
            continue;
        }
        c->kind = SINK_CONN;
        c->fd = fd;
        c->in_header = true;
        pp_strip_init(&c->pp);
        ev.data.ptr = c;
        epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
        s->st.accepted++;
        s->st.open++;
    }
}

/* Counts the header kind once the stripper has decided. */
static void header_seen(struct sink *s, struct sink_conn *c, enum pp_result r)
{
    c->in_header = false;
    if (r == PP_BAD)
        s->st.hdr_bad++;
    else if (r == PP_NONE)
        s->st.hdr_none++;
    else if (c->pp.kind == PP_KIND_V1)
        s->st.hdr_v1++;
    else
        s->st.hdr_v2++;
}

/* Reads the start of a stream and feeds it to the header stripper. Returns
 * the bytes read (0 at end of stream) or -errno. */
static ssize_t read_header(struct sink *s, struct sink_conn *c)
{
    ssize_t n = recv(c->fd, read_buf, READ_MAX, 0);
    size_t used;
    enum pp_result r;

    if (n <= 0)
        return n == 0 ? 0 : -errno;
    r = pp_strip_feed(&c->pp, (const uint8_t *)read_buf, (size_t)n, &used);
    if (r == PP_MORE)
        return n;
    header_seen(s, c, r);
    s->st.bytes += (size_t)n - used + (r == PP_NONE ? c->pp.have : 0);
    return n;
}

/* Drains a readable connection; closes it at end of stream or on error. */
static void conn_read(struct sink *s, struct sink_conn *c)
{
    int flags = s->copy ? 0 : MSG_TRUNC;

    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n;

        if (c->in_header)
            n = read_header(s, c);
        else if ((n = recv(c->fd, read_buf, READ_MAX, flags)) > 0)
            s->st.bytes += (size_t)n;
        else if (n == -1)
            n = -errno;
        if (n == -EAGAIN || n == -EINTR)
            return;
        if (n <= 0) {
            if (n < 0 && n != -ECONNRESET)
                s->st.errors++;
            conn_close(s, c);
            return;
        }
    }
}

/* Handles pending signals. Returns true when it is time to exit. */
static bool signal_read(struct sink *s)
{
    struct signalfd_siginfo si;
    bool stop = false;

    while (read(s->signal.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1)
            stats_write(s);
        else
            stop = true;
    }
    return stop;
}

/* Runs until a stop signal or the deadline. */
static void run(struct sink *s)
{
    struct epoll_event evs[256];
    uint64_t deadline = tool_now_ns() + (uint64_t)(s->duration * 1e9);
    uint64_t now;

    while ((now = tool_now_ns()) < deadline) {
        int ms = (int)((deadline - now) / 1000000) + 1;
        int n = epoll_wait(s->ep, evs, 256, ms);

        for (int i = 0; i < n; i++) {
            struct sink_conn *c = evs[i].data.ptr;

            if (c->kind == SINK_LISTENER)
                accept_all(s);
            else if (c->kind == SINK_SIGNAL && signal_read(s))
                return;
            else if (c->kind == SINK_CONN)
                conn_read(s, c);
        }
    }
}

/* Registers fd as the special entry c. Returns 0 or -errno. */
static int watch(struct sink *s, struct sink_conn *c, enum sink_kind kind, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

    c->kind = kind;
    c->fd = fd;
    return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) == -1 ? -errno : 0;
}

int main(int argc, char **argv)
{
    static struct sink s;
    int lfd, sfd;

    if (parse_args(&s, argc, argv) != 0)
        return 2;
    tool_raise_nofile();
    sfd = tool_signalfd();
    lfd = tool_listen(&s.addr);
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || lfd < 0 || s.ep == -1) {
        fprintf(stderr, "sink: cannot listen on %s: %s\n", argv[argc - 1],
                strerror(lfd < 0 ? -lfd : errno));
        return 1;
    }
    if (watch(&s, &s.listener, SINK_LISTENER, lfd) != 0 ||
        watch(&s, &s.signal, SINK_SIGNAL, sfd) != 0)
        return 1;
    run(&s);
    stats_write(&s);
    return 0;
}
