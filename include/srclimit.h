/* Open connections, and new ones per second, per client address, shared
 * by every worker without a lock: a count-min sketch of four rows of
 * atomic counters for each. A source's
 * count is the smallest of its four cells, never less than its true count;
 * an innocent source is held back only if all four of its cells are shared
 * with other sources that fill them. Fixed memory (1 MiB and 2 MiB,
 * touched as used). */
#ifndef RINGRELAY_SRCLIMIT_H
#define RINGRELAY_SRCLIMIT_H

#include <stdint.h>
#include <sys/socket.h>

#define SRCLIMIT_BUCKETS 65536
#define SRCLIMIT_ROWS 4

/* The key of sa's address (its port does not count). */
uint64_t srclimit_key(const struct sockaddr *sa);

/* Counts one more connection from key unless it already has limit open:
 * returns 0 (counted) or -1 (refused, nothing counted). */
int srclimit_take(uint64_t key, uint32_t limit);

/* The connection counted by srclimit_take ended. */
void srclimit_put(uint64_t key);

/* Counts one more new connection from key in this second (a count that
 * starts over each second, in a second sketch of the same shape): returns
 * 0 while key has opened at most limit in it, else -1. Refused ones count
 * too, so a source that keeps trying stays refused. */
int srclimit_rate(uint64_t key, uint32_t limit, uint32_t second);

#endif
