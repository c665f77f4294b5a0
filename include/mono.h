/* The monotonic clock in milliseconds, for the threads off the data path
 * (main, stats, checker, resolver); workers keep their own coarse clock. */
#ifndef RINGRELAY_MONO_H
#define RINGRELAY_MONO_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
