/* Helpers shared by the load tools. */
#include "tool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

int tool_parse_addr(const char *s, struct tool_addr *a)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    size_t hlen;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;

    if (!colon || colon == s || colon[1] == '\0')
        return -EINVAL;
    hlen = (size_t)(colon - s);
    if (s[0] == '[' && colon[-1] == ']') {
        s++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -EINVAL;
    memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int tool_parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || !isfinite(v) || v < 0)
        return -EINVAL;
    if (strcmp(end, "ms") == 0)
        v /= 1000;
    else if (strcmp(end, "m") == 0)
        v *= 60;
    else if (strcmp(end, "s") != 0 && *end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

int tool_parse_count(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Options a tool may declare, plus -h/--help. */
#define OPTS_MAX 15

/* getopt_long()'s code for option i: its letter, or one no letter can have. */
static int opt_code(const struct tool_opt *opts, int i)
{
    return opts[i].letter ? opts[i].letter : 256 + i;
}

/* Builds getopt_long()'s tables from opts, with -h/--help last. longs holds
 * OPTS_MAX + 2 entries and shorts 2 * OPTS_MAX + 2 bytes. Returns 0 or
 * -EINVAL when opts is too long. */
static int opts_build(const struct tool_opt *opts, struct option *longs, char *shorts)
{
    int i;

    for (i = 0; opts[i].name; i++) {
        bool flag = opts[i].type == TOOL_OPT_FLAG;

        if (i == OPTS_MAX)
            return -EINVAL;
        longs[i] = (struct option){opts[i].name, flag ? no_argument : required_argument, NULL,
                                   opt_code(opts, i)};
        if (opts[i].letter) {
            *shorts++ = opts[i].letter;
            if (!flag)
                *shorts++ = ':';
        }
    }
    longs[i] = (struct option){"help", no_argument, NULL, 'h'};
    longs[i + 1] = (struct option){NULL, 0, NULL, 0};
    strcpy(shorts, "h");
    return 0;
}

/* The option getopt_long() returned as code, or NULL if it is not in opts. */
static const struct tool_opt *opt_find(const struct tool_opt *opts, int code)
{
    for (int i = 0; opts[i].name; i++)
        if (opt_code(opts, i) == code)
            return &opts[i];
    return NULL;
}

/* Stores option o's value, given as arg, into conf. Returns 0 or -EINVAL. */
static int opt_store(const struct tool_opt *o, const char *arg, void *conf)
{
    char *field = (char *)conf + o->offset;

    switch (o->type) {
    case TOOL_OPT_SECONDS:
        return tool_parse_seconds(arg, (double *)field);
    case TOOL_OPT_COUNT:
        return tool_parse_count(arg, o->min, o->max, (long *)field);
    case TOOL_OPT_STRING:
        *(const char **)field = arg;
        return 0;
    case TOOL_OPT_FLAG:
        *(bool *)field = true;
        return 0;
    }
    return -EINVAL;
}

int tool_parse_args(int argc, char **argv, const struct tool_opt *opts, void *conf,
                    const char *usage, struct tool_addr *addr)
{
    struct option longs[OPTS_MAX + 2];
    char shorts[2 * OPTS_MAX + 2];
    int c, bad = 0;

    if (opts_build(opts, longs, shorts) != 0) {
        fprintf(stderr, "%s: more than %d options\n", argv[0], OPTS_MAX);
        return -1;
    }
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        const struct tool_opt *o = opt_find(opts, c);

        if (c == 'h') {
            fputs(usage, stdout);
            exit(0);
        }
        bad |= o ? opt_store(o, optarg, conf) : -EINVAL;
    }
    if (bad || optind != argc - 1 || tool_parse_addr(argv[optind], addr) != 0) {
        fputs(usage, stderr);
        return -1;
    }
    return 0;
}

long tool_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return -errno;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
        return -errno;
    return (long)rl.rlim_cur;
}

uint64_t tool_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tool_deadline(double seconds)
{
    return tool_now_ns() + (uint64_t)(seconds * 1e9);
}

int tool_ms_until(uint64_t deadline, uint64_t now)
{
    uint64_t ms;

    if (now >= deadline)
        return 0;
    ms = (deadline - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Waits for a nonblocking connect to finish. Returns 0 or -errno. */
static int connect_wait(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);
    int n;

    do
        n = poll(&p, 1, timeout_ms);
    while (n == -1 && errno == EINTR);
    if (n == -1)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return -errno;
    return -err;
}

int tool_connect(const struct tool_addr *a, int timeout_ms)
{
    static const int one = 1;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err;

    if (fd == -1)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
        err = 0;
    else if (errno == EINPROGRESS)
        err = connect_wait(fd, timeout_ms);
    else
        err = -errno;
    if (err == 0 && fcntl(fd, F_SETFL, 0) == -1)
        err = -errno;
    if (err) {
        close(fd);
        return err;
    }
    return fd;
}

int tool_connect_all(const struct tool_addr *a, int timeout_ms, int *fds, long n, long *opened)
{
    for (*opened = 0; *opened < n; (*opened)++) {
        int fd = tool_connect(a, timeout_ms);

        if (fd < 0)
            return fd;
        fds[*opened] = fd;
    }
    return 0;
}

int tool_connect_watch(const char *name, const struct tool_addr *a, int ep, uint32_t events,
                       int *fds, long n)
{
    long opened;
    int err = tool_connect_all(a, 5000, fds, n, &opened);

    if (err) {
        fprintf(stderr, "%s: connect %ld: %s\n", name, opened, strerror(-err));
        return err;
    }
    for (long i = 0; i < n; i++) {
        struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)i};

        err = tool_set_nonblock(fds[i]);
        if (err)
            return err;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) == -1)
            return -errno;
    }
    return 0;
}

int tool_listen(const struct tool_addr *a)
{
    static const int one = 1;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err;

    if (fd == -1)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1 || listen(fd, 4096) == -1) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int tool_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
        return -errno;
    return 0;
}

int tool_signalfd(void)
{
    sigset_t set;
    int fd;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
        return -errno;
    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd == -1 ? -errno : fd;
}

int tool_signal_take(int sfd)
{
    struct signalfd_siginfo si;
    int got = 0;

    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        got |= si.ssi_signo == SIGUSR1 ? TOOL_SIG_USR1 : TOOL_SIG_STOP;
    return got;
}

/* The start of a small file (/proc) as a string; -1 when it cannot be read. */
static int read_head(const char *path, char *buf, size_t cap)
{
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1)
        return -1;
    n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* utime+stime from one stat file, in ticks; -1 when it cannot be read. */
static long long stat_ticks(const char *path)
{
    char buf[1024];
    unsigned long long ut, st;
    char *p;

    if (read_head(path, buf, sizeof(buf)) < 0)
        return -1;
    /* comm may hold spaces and parentheses: fields restart after the last ')' */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* The machine's busy ticks over all CPUs: the first line of /proc/stat,
 * "cpu user nice system idle iowait irq softirq steal ...", without idle
 * and iowait (guest time is inside user already); -1 when unreadable. */
static long long system_ticks(void)
{
    char buf[256];
    unsigned long long v[8];

    if (read_head("/proc/stat", buf, sizeof(buf)) < 0)
        return -1;
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) != 8)
        return -1;
    return (long long)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
}

int tool_cpu_read(pid_t pid, struct tool_cpu *c)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    long long t;

    c->system = system_ticks();
    if (pid == 0)
        return c->system < 0 ? -EIO : 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    c->group = stat_ticks(path);
    if (c->group < 0)
        return -ESRCH;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    d = opendir(path);
    if (!d)
        return -errno;
    c->tasks = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.20s/stat", (int)pid, e->d_name);
        t = stat_ticks(path);
        if (t > 0)
            c->tasks += t;
    }
    closedir(d);
    return 0;
}

double tool_cpu_seconds(const struct tool_cpu *before, const struct tool_cpu *after)
{
    long long dt = after->tasks - before->tasks;
    long long dg = after->group - before->group;
    long hz = sysconf(_SC_CLK_TCK);

    return (double)(dt > dg ? dt : dg) / (double)(hz > 0 ? hz : 100);
}

void tool_end_line(pid_t pid, const struct tool_cpu *before)
{
    struct tool_cpu after;
    long hz = sysconf(_SC_CLK_TCK);

    if (tool_cpu_read(pid, &after) == 0) {
        if (pid)
            printf(" cpu_s=%.3f", tool_cpu_seconds(before, &after));
        if (before->system > 0 && after.system >= before->system)
            printf(" sys_cpu_s=%.3f",
                   (double)(after.system - before->system) / (double)(hz > 0 ? hz : 100));
    }
    printf("\n");
    fflush(stdout);
}

/* Marks w, whose fd is set, as kind and adds it to s's epoll for reading.
 * Returns 0 or -errno. */
static int server_watch(struct tool_server *s, struct tool_watch *w, enum tool_watch_kind kind)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};

    w->kind = kind;
    return epoll_ctl(s->ep, EPOLL_CTL_ADD, w->fd, &ev) == -1 ? -errno : 0;
}

/* Raises the open-file limit, blocks the stop signals and listens on a.
 * Returns 0 or -errno. */
static int server_open(struct tool_server *s, const struct tool_addr *a)
{
    int err;

    tool_raise_nofile();
    s->signal.fd = tool_signalfd();
    if (s->signal.fd < 0)
        return s->signal.fd;
    s->listener.fd = tool_listen(a);
    if (s->listener.fd < 0) {
        err = s->listener.fd;
        goto out_close_signal;
    }
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep == -1) {
        err = -errno;
        goto out_close_listener;
    }
    err = server_watch(s, &s->listener, TOOL_WATCH_LISTENER);
    if (err == 0)
        err = server_watch(s, &s->signal, TOOL_WATCH_SIGNAL);
    if (err == 0)
        return 0;
    close(s->ep);
out_close_listener:
    close(s->listener.fd);
out_close_signal:
    close(s->signal.fd);
    return err;
}

/* Accepts every pending connection and hands each to the tool. */
static void server_accept(struct tool_server *s)
{
    for (;;) {
        int fd = accept4(s->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct tool_watch *w;
        int err;

        if (fd == -1) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                s->st.errors++;
            return;
        }
        w = s->conn_new(s, fd);
        if (!w) {
            close(fd);
            s->st.errors++;
            continue;
        }
        w->fd = fd;
        s->st.accepted++;
        s->st.open++;
        err = server_watch(s, w, TOOL_WATCH_CONN);
        if (err)
            tool_server_drop(s, w, err);
    }
}

/* Handles pending signals. Returns true when it is time to stop. */
static bool server_signal(struct tool_server *s)
{
    int got = tool_signal_take(s->signal.fd);

    if (got & TOOL_SIG_USR1)
        s->report(s);
    return got & TOOL_SIG_STOP;
}

/* Accepts and serves until SIGTERM or SIGINT, or for s->duration. */
static void server_run(struct tool_server *s)
{
    struct epoll_event evs[256];
    uint64_t deadline = tool_deadline(s->duration);
    uint64_t now;

    while ((now = tool_now_ns()) < deadline) {
        int n = epoll_wait(s->ep, evs, 256, tool_ms_until(deadline, now));

        for (int i = 0; i < n; i++) {
            struct tool_watch *w = evs[i].data.ptr;

            if (w->kind == TOOL_WATCH_LISTENER)
                server_accept(s);
            else if (w->kind == TOOL_WATCH_SIGNAL && server_signal(s))
                return;
            else if (w->kind == TOOL_WATCH_CONN)
                s->conn_ready(s, w, evs[i].events);
        }
    }
}

int tool_server_serve(struct tool_server *s, const struct tool_addr *a, const char *name,
                      const char *text)
{
    int err = server_open(s, a);

    if (err) {
        fprintf(stderr, "%s: cannot listen on %s: %s\n", name, text, strerror(-err));
        return 1;
    }
    server_run(s);
    s->report(s);
    return 0;
}

void tool_server_drop(struct tool_server *s, struct tool_watch *w, int err)
{
    if (err < 0 && err != -EPIPE && err != -ECONNRESET)
        s->st.errors++;
    close(w->fd);
    free(w);
    s->st.open--;
}

void tool_stats_print(FILE *f, const struct tool_stats *st)
{
    fprintf(f,
            "accepted=%llu open=%llu hdr_v1=%llu hdr_v2=%llu hdr_none=%llu hdr_bad=%llu "
            "bytes=%llu errors=%llu\n",
            st->accepted, st->open, st->hdr.v1, st->hdr.v2, st->hdr.none, st->hdr.bad, st->bytes,
            st->errors);
    fflush(f);
}
