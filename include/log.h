/* Leveled logging to stderr: one line per event, level checked before any
 * argument is formatted. Pure modules never log. */
#ifndef RINGRELAY_LOG_H
#define RINGRELAY_LOG_H

#include <stdatomic.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Set by the main thread (start, reload), read by every thread. */
extern _Atomic int log_level;

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the level named by s, or -1. */
int log_level_parse(const char *s);

/* A per-thread, per-call-site budget: at most LOG_RL_BURST lines a second,
 * then one line saying how many were suppressed. */
struct log_rl {
    uint64_t second;
    uint32_t count;
    uint32_t suppressed;
};
#define LOG_RL_BURST 5
int log_rl_allow(struct log_rl *rl);

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
        static __thread struct log_rl rl__;                                                        \
        if ((level) <= atomic_load_explicit(&log_level, memory_order_relaxed) &&                   \
            log_rl_allow(&rl__))                                                                   \
            log_msg((level), __VA_ARGS__);                                                         \
    } while (0)

#endif
