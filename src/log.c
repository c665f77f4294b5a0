/* Leveled, rate-limitable logging to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

/* Formats the whole line first and writes it with one write(2), so lines
 * from different workers never interleave. Returns the message's start. */
__attribute__((format(printf, 4, 0))) static const char *
log_vmsg(int level, char *line, size_t size, const char *fmt, va_list ap)
{
    struct timespec ts;
    struct tm tm;
    int n, head;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    head = snprintf(line, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    ts.tv_nsec / 1000000, level_names[level]);
    if (head < 0)
        return "";
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    n = head + vsnprintf(line + head, size - (size_t)head - 1, fmt, ap);
    if (n > (int)size - 2)
        n = (int)size - 2;
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
    line[n - 1] = '\0';
    return line + head;
}

void log_msg(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(level, line, sizeof(line), fmt, ap);
    va_end(ap);
}

/* Every rate-limited call site that has logged, for log_rl_flush(). */
static pthread_mutex_t rl_list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_rl *rl_list;

static uint64_t now_second(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec;
}

/* rl->lock held: the summary of what the site held back, once. */
static void rl_summary(struct log_rl *rl)
{
    if (rl->suppressed)
        log_msg(LOG_LEVEL_WARN, "(%u more like \"%s\" suppressed)", rl->suppressed, rl->like);
    rl->suppressed = 0;
}

void log_rl_msg(struct log_rl *rl, int level, const char *fmt, ...)
{
    uint64_t second = now_second();
    char line[1024];
    va_list ap;

    pthread_mutex_lock(&rl->lock);
    if (second != rl->second) {
        rl_summary(rl);
        rl->second = second;
        rl->count = 0;
    }
    if (rl->count == LOG_RL_BURST) {
        rl->suppressed++;
        pthread_mutex_unlock(&rl->lock);
        return;
    }
    rl->count++;
    va_start(ap, fmt);
    snprintf(rl->like, sizeof(rl->like), "%s", log_vmsg(level, line, sizeof(line), fmt, ap));
    va_end(ap);
    pthread_mutex_unlock(&rl->lock);
    if (!__atomic_load_n(&rl->listed, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&rl_list_lock);
        if (!rl->listed) {
            rl->next = rl_list;
            rl_list = rl;
            __atomic_store_n(&rl->listed, 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&rl_list_lock);
    }
}

void log_rl_flush(int all)
{
    uint64_t second = now_second();

    pthread_mutex_lock(&rl_list_lock);
    for (struct log_rl *rl = rl_list; rl; rl = rl->next) {
        pthread_mutex_lock(&rl->lock);
        if (all || rl->second != second)
            rl_summary(rl);
        pthread_mutex_unlock(&rl->lock);
    }
    pthread_mutex_unlock(&rl_list_lock);
}
