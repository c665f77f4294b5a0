/* Leveled logging to stderr: one line per event, level checked before any
 * argument is formatted. Pure modules never log. */
#ifndef RINGRELAY_LOG_H
#define RINGRELAY_LOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Set by the main thread (start, reload), read by every thread. */
extern _Atomic int log_level;

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the level named by s, or -1. */
int log_level_parse(const char *s);

/* A per-call-site budget shared by every thread: at most LOG_RL_BURST
 * lines a second, and for what it held back one line, "(N more like "..."
 * suppressed)", when the next second starts or, if nothing more comes, at
 * the next log_rl_flush(). */
struct log_rl {
    pthread_mutex_t lock;
    uint64_t second;
    uint32_t count;
    uint32_t suppressed;
    char like[80]; /* the start of the last line logged */
    struct log_rl *next;
    int listed;
};
#define LOG_RL_INIT                                                                                \
    {                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER                                                          \
    }
#define LOG_RL_BURST 5
void log_rl_msg(struct log_rl *rl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Says what every call site held back in a second now over (all: up to
 * now too, for a process about to exit). Called about once a second. */
void log_rl_flush(int all);

#define log_at(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= atomic_load_explicit(&log_level, memory_order_relaxed))                     \
            log_msg((level), __VA_ARGS__);                                                         \
    } while (0)

#define log_error(...) log_at(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Rate-limited: for events a peer can trigger at will. */
#define log_rl(level, ...)                                                                         \
    do {                                                                                           \
        static struct log_rl rl__ = LOG_RL_INIT;                                                   \
        if ((level) <= atomic_load_explicit(&log_level, memory_order_relaxed))                     \
            log_rl_msg(&rl__, (level), __VA_ARGS__);                                               \
    } while (0)

#endif
