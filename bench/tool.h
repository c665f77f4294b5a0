/* Helpers shared by the load tools: addresses, sockets, time, limits and
 * reading another process's CPU time. */
#ifndef BENCH_TOOL_H
#define BENCH_TOOL_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct tool_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* CPU time of a process in clock ticks, read two ways: summed over its live
 * threads (/proc/PID/task/N/stat) and for the whole thread group
 * (/proc/PID/stat, which keeps the time of threads that have exited). */
struct tool_cpu {
    long long tasks;
    long long group;
};

/* Parses "1.2.3.4:80", "[::1]:80" or "name:80". Returns 0 or -EINVAL. */
int tool_parse_addr(const char *s, struct tool_addr *a);

/* Parses a duration: "10", "10s", "1.5s", "500ms", "2m". Returns 0 or -EINVAL. */
int tool_parse_seconds(const char *s, double *out);

/* Parses a decimal count in [min, max]. Returns 0 or -EINVAL. */
int tool_parse_count(const char *s, long min, long max, long *out);

/* Raises the open-file soft limit to the hard limit. Returns the new soft
 * limit or -errno. */
long tool_raise_nofile(void);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tool_now_ns(void);

/* Connects a blocking TCP socket within timeout_ms, with TCP_NODELAY set.
 * Returns the fd or -errno. */
int tool_connect(const struct tool_addr *a, int timeout_ms);

/* Opens a nonblocking listening socket with SO_REUSEADDR. Returns the fd or
 * -errno. */
int tool_listen(const struct tool_addr *a);

/* Sets O_NONBLOCK. Returns 0 or -errno. */
int tool_set_nonblock(int fd);

/* Blocks SIGINT, SIGTERM and SIGUSR1 (and ignores SIGPIPE) and returns a
 * nonblocking signalfd for them, or -errno. */
int tool_signalfd(void);

/* Reads pid's CPU time. Returns 0 or -errno. */
int tool_cpu_read(pid_t pid, struct tool_cpu *c);

/* Seconds of CPU between two readings: the larger of the two views, so a
 * thread that exited in between is not lost. */
double tool_cpu_seconds(const struct tool_cpu *before, const struct tool_cpu *after);

#endif
