/* Helpers shared by the load tools. */
#include "tool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* utime+stime from one stat file, in ticks; -1 when it cannot be read. */
static long long stat_ticks(const char *path)
{
    char buf[1024];
    unsigned long long ut, st;
    ssize_t n;
    char *p;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: fields restart after the last ')' */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

int tool_cpu_read(pid_t pid, struct tool_cpu *c)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    long long t;

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
